#!/usr/bin/python3
"""HTTP/2 server and client on python3-h2 (Debian), to record frames that
command-line peers do not send: CONTINUATION, padding, priority, trailers,
RST_STREAM, GOAWAY, never-indexed fields, a table size raised by SETTINGS.

    h2_peer.py server PORT          serve until killed (prior knowledge or h2c upgrade)
    h2_peer.py client PORT          run the scripted client once
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings
from hpack import NeverIndexedHeaderTuple


def serve_conn(sock):
    cfg = h2.config.H2Configuration(client_side=False, header_encoding=None)
    conn = h2.connection.H2Connection(config=cfg)
    first = sock.recv(65536)
    if first.startswith(b"PRI * HTTP/2.0"):
        conn.initiate_connection()
        events = conn.receive_data(first)
    else:
        # h2c upgrade (RFC 7540 §3.2): answer 101, then stream 1 is the request.
        head, _, _ = first.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        settings = [l.split(b":", 1)[1].strip() for l in lines if l.lower().startswith(b"http2-settings:")]
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        conn.initiate_upgrade_connection(settings[0] if settings else None)
        events = []
        path = lines[0].split(b" ")[1]
        respond(conn, 1, path, b"")
    bodies = {}
    paths = {}
    while True:
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                hd = dict(ev.headers)
                paths[ev.stream_id] = hd.get(b":path", b"/")
                bodies[ev.stream_id] = b""
            elif isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                if ev.stream_id in paths:
                    respond(conn, ev.stream_id, paths[ev.stream_id], bodies.get(ev.stream_id, b""))
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
        data = sock.recv(65536)
        if not data:
            break
        try:
            events = conn.receive_data(data)
        except Exception:
            break
    sock.close()


def respond(conn, sid, path, body):
    if path == b"/reset":
        conn.send_headers(sid, [(b":status", b"200")])
        conn.reset_stream(sid, error_code=8)
        return
    if path == b"/trailers":
        conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"text/plain")])
        conn.send_data(sid, b"x" * 1000)
        conn.send_headers(sid, [(b"x-checksum", b"abc123")], end_stream=True)
        return
    if path == b"/bigheaders":
        conn.send_headers(sid, [(b":status", b"200"), (b"x-big", b"b" * 40000)])
        conn.send_data(sid, b"ok", end_stream=True)
        return
    if path == b"/padded":
        conn.send_headers(sid, [(b":status", b"200")])
        conn.send_data(sid, b"p" * 500, pad_length=37, end_stream=True)
        return
    if path == b"/goaway":
        conn.send_headers(sid, [(b":status", b"204")], end_stream=True)
        conn.close_connection(error_code=0, last_stream_id=sid)
        return
    status = b"200"
    out = body if body else b"hello from h2 " + path
    conn.send_headers(sid, [(b":status", status), (b"content-length", str(len(out)).encode()),
                            (b"server", b"h2_peer")])
    conn.send_data(sid, out, end_stream=True)


def server(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    while True:
        s, _ = ls.accept()
        try:
            serve_conn(s)
        except Exception as e:  # keep serving the next connection
            print("h2_peer server:", repr(e), file=sys.stderr)
            s.close()


def client(port):
    cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config=cfg)
    # Raise the table the server's encoder may use (RFC 9113 §6.5.2).
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 65536})
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(conn.data_to_send())
    base = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"127.0.0.1")]

    def req(path, extra=(), body=None, pad=None, wait=True, **kw):
        sid = conn.get_next_available_stream_id()
        hs = base[:1] + [(b":path", path)] + base[1:] + list(extra)
        if body is not None:
            hs[0] = (b":method", b"POST")
        conn.send_headers(sid, hs, end_stream=body is None, **kw)
        if body is not None:
            conn.send_data(sid, body, end_stream=True, pad_length=pad)
        s.sendall(conn.data_to_send())
        return sid

    def pump_until(done):
        ended = set()
        while not done(ended):
            data = s.recv(65536)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended.add(ev.stream_id)
                if isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if isinstance(ev, h2.events.ConnectionTerminated):
                    return
            out = conn.data_to_send()
            if out:
                s.sendall(out)

    a = req(b"/small", [(b"user-agent", b"h2_peer"), NeverIndexedHeaderTuple(b"authorization", b"Bearer secret")])
    pump_until(lambda e: a in e)
    # Concurrent, interleaved streams; priority fields on one.
    ids = [req(b"/small?%d" % i, [(b"user-agent", b"h2_peer"), (b"x-req", b"%d" % i)],
               priority_weight=200 if i == 1 else None) for i in range(4)]
    pump_until(lambda e: all(i in e for i in ids))
    b = req(b"/echo", [(b"content-type", b"application/octet-stream")], body=b"e" * 3000, pad=20)
    pump_until(lambda e: b in e)
    c = req(b"/trailers", [(b"te", b"trailers")])
    pump_until(lambda e: c in e)
    d = req(b"/bigheaders", [(b"x-big-request", b"q" * 20000)])
    pump_until(lambda e: d in e)
    f = req(b"/padded")
    pump_until(lambda e: f in e)
    g = req(b"/reset")
    pump_until(lambda e: g in e)
    h = req(b"/goaway")
    pump_until(lambda e: False)
    s.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        client(int(sys.argv[2]))
