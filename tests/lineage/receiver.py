"""A lineage service for tests, on 127.0.0.1: takes events POSTed to
/api/v1/lineage and appends each (one line) to a file, in the order they
arrive, after the Authorization header it came with. Writes its port to a
file once it listens."""

import http.server
import os
import sys

port_file, events = sys.argv[1:3]


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/api/v1/lineage":
            self.send_response(404)
            self.end_headers()
            return
        with open(events, "ab") as f:
            auth = (self.headers.get("Authorization") or "-").encode()
            f.write(auth + b"\t" + body.strip() + b"\n")
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
