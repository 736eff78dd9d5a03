#!/usr/bin/python3
"""gRPC server and client on python3-grpcio (Debian), without generated code:
methods take and return raw bytes.

    grpc_peer.py server PORT
    grpc_peer.py client PORT     one call of each kind, then an error call
"""
import sys
import time
from concurrent import futures

import grpc


def unary(req, ctx):
    return b"pong:" + req


def server_stream(req, ctx):
    for i in range(3):
        yield b"item %d" % i


def client_stream(it, ctx):
    return b"got %d" % sum(1 for _ in it)


def bidi(it, ctx):
    for m in it:
        yield b"echo " + m


def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing: caf\u00e9 100%")


def server(port):
    h = grpc.method_handlers_generic_handler("demo.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    })
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers((h,))
    s.add_insecure_port("127.0.0.1:%d" % port)
    s.start()
    s.wait_for_termination()


def client(port):
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        print(ch.unary_unary("/demo.Echo/Unary")(b"ping"))
        print(list(ch.unary_stream("/demo.Echo/ServerStream")(b"go")))
        print(ch.stream_unary("/demo.Echo/ClientStream")(iter([b"a", b"b", b"c", b"d"])))
        print(list(ch.stream_stream("/demo.Echo/Bidi")(iter([b"1", b"2"]))))
        try:
            ch.unary_unary("/demo.Echo/Fail")(b"x")
        except grpc.RpcError as e:
            print(e.code())
        for i in range(5):
            ch.unary_unary("/demo.Echo/Unary")(b"again %d" % i)
        time.sleep(0.2)


if __name__ == "__main__":
    (server if sys.argv[1] == "server" else client)(int(sys.argv[2]))
