#!/usr/bin/env python3
"""tests/lib/http-server.py DIR PORTFILE LOGFILE [CERT KEY]: serves DIR on 127.0.0.1 (a free
port, written to PORTFILE) with Last-Modified from the files' mtimes, over TLS when CERT and KEY
are given; one line per request ("GET /path 200") goes to LOGFILE. Stops by itself after 15
minutes."""
import functools
import http.server
import os
import ssl
import sys
import threading

root, portfile, logfile = sys.argv[1:4]


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        with open(logfile, "a") as f:
            f.write("%s %s %s\n" % (self.command, self.path, code))

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
threading.Timer(900, srv.shutdown).start()
srv.serve_forever()
