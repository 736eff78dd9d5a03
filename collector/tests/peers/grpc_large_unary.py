"""grpcio client: one unary call with a 3 MB message each way (grpcio
writes such a message in one syscall of several MB), then a small one on
the same connection. Prints a JSON line per call as the fixture client
does. Usage: grpc_large_unary.py STUBS_DIR PORT"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import echo_pb2  # noqa: E402
import echo_pb2_grpc  # noqa: E402

SERVICE = "sniff.test.Echo"


def framed(msg):
    return 5 + len(msg.SerializeToString())


options = [("grpc.enable_http_proxy", 0)]
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[2]}", options=options) as channel:
    stub = echo_pb2_grpc.EchoStub(channel)
    for pad in (3_000_000, 10):
        req = echo_pb2.Msg(text="big" if pad > 10 else "small", n=1, pad=b"b" * pad)
        resp = stub.Unary(req)
        print(json.dumps({
            "method": "POST",
            "path": f"/{SERVICE}/Unary",
            "status": None,
            "request_body": framed(req),
            "response_body": framed(resp),
            "grpc": {
                "service": SERVICE,
                "method": "Unary",
                "kind": "unary",
                "requests": 1,
                "responses": 1,
                "status": 0,
                "message": None,
            },
        }), flush=True)
