#!/usr/bin/python3
"""Loopback TCP relay that records both directions of each connection.

    relay.py LISTEN_PORT TARGET_PORT OUT_PREFIX [MAX_CONNS]

Connection k is written to OUT_PREFIX.rec (k = 0) or OUT_PREFIX-k.rec.
Format (all integers big-endian):
    b"H2REC1\n"
    then per chunk, in the order the relay received them:
    u8 dir (0 = client->server, 1 = server->client), u64 ns since the
    connection was accepted, u32 length, the octets.
Each chunk is one recv() of the relay, so chunk boundaries look like the
syscall boundaries a tracer sees. Exits after MAX_CONNS connections (default 1).
"""
import socket
import struct
import sys
import threading
import time


def pump(src, dst, d, chunks, lock, t0):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            with lock:
                chunks.append((d, time.monotonic_ns() - t0, b))
            dst.sendall(b)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(conn, target, path):
    up = socket.create_connection(("127.0.0.1", target))
    for s in (conn, up):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    chunks, lock, t0 = [], threading.Lock(), time.monotonic_ns()
    ts = [threading.Thread(target=pump, args=(conn, up, 0, chunks, lock, t0)),
          threading.Thread(target=pump, args=(up, conn, 1, chunks, lock, t0))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    conn.close()
    up.close()
    with open(path, "wb") as f:
        f.write(b"H2REC1\n")
        for d, t, b in chunks:
            f.write(struct.pack(">BQI", d, t, len(b)))
            f.write(b)


def main():
    listen, target, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    max_conns = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen))
    ls.listen(16)
    print("ready", flush=True)
    threads = []
    for k in range(max_conns):
        conn, _ = ls.accept()
        path = f"{prefix}.rec" if k == 0 else f"{prefix}-{k}.rec"
        t = threading.Thread(target=serve, args=(conn, target, path))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
