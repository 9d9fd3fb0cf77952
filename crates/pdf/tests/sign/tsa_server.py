"""An RFC 3161 time-stamping authority for tests: `openssl ts -reply` behind HTTP.

usage: tsa_server.py TS_CONFIG   (prints the port it listens on, then serves)
"""
import http.server
import subprocess
import sys
import tempfile
import os

CONFIG = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with tempfile.TemporaryDirectory() as d:
            q, r = os.path.join(d, "q.tsq"), os.path.join(d, "r.tsr")
            with open(q, "wb") as f:
                f.write(body)
            subprocess.run(
                ["openssl", "ts", "-reply", "-config", CONFIG, "-queryfile", q, "-out", r],
                check=True,
                capture_output=True,
            )
            with open(r, "rb") as f:
                reply = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
