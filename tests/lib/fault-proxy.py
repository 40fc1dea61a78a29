#!/usr/bin/env python3
"""tests/lib/fault-proxy.py - an HTTP proxy on 127.0.0.1 that breaks registry traffic on purpose.

usage: fault-proxy.py PORTFILE UPSTREAM(host:port) PLAN LOG

PLAN is a comma-separated list of FAULT@KIND items, used up in order: the next request of
KIND (blob = GET of a blob, manifest = GET of a manifest, upload = POST/PUT/PATCH of an upload,
patch = PATCH of an upload, chunk2 = PATCH of a chunk after the first, head = HEAD, any = any request) gets FAULT, requests with no
pending item pass untouched. FAULT is one of
  500, 429...  answer that status without asking the registry
  drop         send the headers and half the body, then close the connection
  short        a shorter Content-Length and only that many bytes (a clean, truncated body)
  flip         the whole body with one byte changed
  noanswer     pass the request on, then close the connection without answering (the
               registry has what was sent, the client does not know)
  wait         hold the request until another one of its kind arrives (10 s at most), then
               pass it on; logged as "wait-joined" or "wait-alone" (shows parallel requests)
  stall        send the headers and half the body, then hang (until the proxy is stopped)
  pass         nothing (to let a first request of a kind through)
Every request is logged to LOG as "METHOD PATH [range=...] -> FAULT|pass STATUS".
"""
import http.client, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

portfile, upstream, plan_s, logpath = sys.argv[1:5]
plan = [p.split("@") for p in plan_s.split(",") if p]
lock = threading.Lock()


def kinds_of(method, path, headers):
    if method == "GET" and "/blobs/sha256:" in path:
        return ["blob"]
    if method == "GET" and "/manifests/" in path:
        return ["manifest"]
    if method == "PATCH" and "/blobs/uploads/" in path:
        later = not (headers.get("Content-Range") or "0-").startswith("0-")
        return ["upload", "patch"] + (["chunk2"] if later else [])
    if method in ("POST", "PUT") and "/blobs/uploads/" in path:
        return ["upload"]
    if method == "HEAD":
        return ["head"]
    return ["other"]


arrivals = {}
arrived = threading.Condition()


def arrive(kinds):
    with arrived:
        for k in kinds:
            arrivals[k] = arrivals.get(k, 0) + 1
        arrived.notify_all()


def wait_for_another(kind):
    with arrived:
        seen = arrivals.get(kind, 0)
        return arrived.wait_for(lambda: arrivals.get(kind, 0) > seen, timeout=10)


def take_fault(kinds):
    with lock:
        for i, (fault, k) in enumerate(plan):
            if k in kinds or k == "any":
                del plan[i]
                return fault, k
    return None, None


def log(line):
    with lock, open(logpath, "a") as f:
        f.write(line + "\n")


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def handle(self):
        # a client that gave up (a cancelled parallel transfer) is no error of the proxy
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        kinds = kinds_of(self.command, self.path, self.headers)
        arrive(kinds)
        fault, kind = take_fault(kinds)
        rng = self.headers.get("Range") or self.headers.get("Content-Range")
        desc = "%s %s%s" % (self.command, self.path.split("?")[0], " range=" + rng if rng else "")
        if fault == "wait":
            fault = "wait-joined" if wait_for_another(kind) else "wait-alone"
        if fault and fault.isdigit():
            log("%s -> %s" % (desc, fault))
            self.send_response(int(fault))
            if fault == "429":
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        c = http.client.HTTPConnection(upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        c.request(self.command, self.path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read() if self.command != "HEAD" else b""
        log("%s -> %s %d" % (desc, fault or "pass", r.status))
        if fault == "noanswer":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fault in ("drop", "short", "flip", "stall") and len(data) < 2:
            fault = None
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            self.send_header(k, v)
        if fault == "short":
            data = data[: len(data) // 2]
        if fault == "flip":
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1:]
        if self.command == "HEAD":
            self.send_header("Content-Length", r.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "stall":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            threading.Event().wait()
        if fault == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(data)
        c.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
import os
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
