#!/usr/bin/env python3
"""tests/lib/http-server.py DIR PORTFILE LOGFILE: serves DIR on 127.0.0.1 (a free port, written
to PORTFILE) with Last-Modified from the files' mtimes; one line per request ("GET /path 200")
goes to LOGFILE. Stops by itself after 15 minutes."""
import functools
import http.server
import os
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
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
threading.Timer(900, srv.shutdown).start()
srv.serve_forever()
