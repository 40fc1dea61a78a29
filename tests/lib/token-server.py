#!/usr/bin/env python3
"""tests/lib/token-server.py - a tiny registry token server for the tests (127.0.0.1 only).

usage: token-server.py PORTFILE KEY.pem CERT.pem USER PASSWORD SERVICE ISSUER LOG

Answers GET /token?service=..&scope=.. like docker's auth server: the Basic credentials must be
USER:PASSWORD (anonymous requests get a token without any access), and the JWT (RS256, the
certificate in x5c) grants every action asked for in the scopes. Writes the port it listens on
to PORTFILE and one line per request to LOG.
"""
import base64, json, subprocess, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

portfile, key, cert, user, password, service, issuer, logpath = sys.argv[1:9]
der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True,
                     capture_output=True).stdout


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(claims):
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing.encode(),
                         check=True, capture_output=True).stdout
    return signing + "." + b64url(sig)


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        auth = self.headers.get("Authorization", "")
        who = None
        if auth.startswith("Basic "):
            if base64.b64decode(auth[6:]).decode() != user + ":" + password:
                with open(logpath, "a") as f:
                    f.write("denied\n")
                self.send_response(401)
                self.end_headers()
                return
            who = user
        access = []
        for scope in q.get("scope", []):
            for s in scope.split(" "):
                parts = s.split(":")
                if len(parts) == 3 and who:
                    access.append({"type": parts[0], "name": parts[1],
                                   "actions": parts[2].split(",")})
        now = int(time.time())
        tok = sign({"iss": issuer, "sub": who or "", "aud": q.get("service", [""])[0],
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(now),
                    "access": access})
        with open(logpath, "a") as f:
            f.write("token %s %s\n" % (who or "anonymous", " ".join(q.get("scope", []))))
        body = json.dumps({"token": tok, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = HTTPServer(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
