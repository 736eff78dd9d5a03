"""An HTTP/1.1 server whose request threads give themselves names of their
own (prctl PR_SET_NAME), as grpcio's `event_engine` threads or a JVM's do:
the process is still `python3` in /proc/PID/comm.

Usage: named_threads_server.py PORT
"""

import ctypes
import http.server
import sys

PR_SET_NAME = 15
libc = ctypes.CDLL(None, use_errno=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        libc.prctl(PR_SET_NAME, b"req-worker", 0, 0, 0)
        body = b"named thread\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
