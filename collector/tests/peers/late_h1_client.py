"""HTTP/1.1 keep-alive client for the late-join test.

    late_h1_client.py HOST PORT FIRST_PATH LATER_PATH...

Connects, GETs FIRST_PATH, prints its socket's addresses as
{"local": "ip:port", "remote": "ip:port"}, waits for a line on stdin (the
test starts sniff meanwhile), then GETs each LATER_PATH on the same
connection. One JSON line per request, in the fixtures' format (what this
client did: method, path, status, body sizes, client port)."""
import http.client
import json
import sys

host, port, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
conn = http.client.HTTPConnection(host, port)


def get(path):
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    print(json.dumps({"method": "GET", "path": path, "status": resp.status,
                      "request_body": 0, "response_body": len(body),
                      "client_port": conn.sock.getsockname()[1]}), flush=True)


get(paths[0])
local, remote = conn.sock.getsockname(), conn.sock.getpeername()
print(json.dumps({"local": f"{local[0]}:{local[1]}", "remote": f"{remote[0]}:{remote[1]}"}),
      flush=True)
sys.stdin.readline()
sock = conn.sock
for p in paths[1:]:
    get(p)
    assert conn.sock is sock, "the connection was not kept alive"
conn.close()
