#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Loopback trace collector for tests/test_export.c (standard library only).

Accepts POSTs on any path, stores each body as DIR/<n>-<path>.json and
answers 200 (OTLP) or 202 (Zipkin).  The first --fail requests get
--code instead (with Retry-After when --retry-after is given), to
exercise the exporter's backoff.  Binds 127.0.0.1 only.
"""
import argparse
import http.server
import os
import threading

lock = threading.Lock()
state = {"n": 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--code", type=int, default=503)
    ap.add_argument("--retry-after", type=int, default=0)
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            with lock:
                state["n"] += 1
                seq = state["n"]
            fail = seq <= args.fail
            code = args.code if fail else (202 if "zipkin" in self.path or
                                           "/api/v2/" in self.path else 200)
            name = self.path.strip("/").replace("/", "_") or "root"
            tag = "fail" if fail else "ok"
            meta = "%s %s %s\n" % (self.headers.get("Content-Type", ""),
                                   self.headers.get("X-Test-Token", ""), tag)
            base = os.path.join(args.dir, "%03d-%s" % (seq, name))
            with open(base + ".meta", "w") as f:
                f.write(meta)
            with open(base + ".tmp", "wb") as f:
                f.write(body)
            os.rename(base + ".tmp", base + (".json" if not fail else ".failed"))
            reply = b"{}"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            if fail and args.retry_after:
                self.send_header("Retry-After", str(args.retry_after))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, fmt, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.serve_forever()


if __name__ == "__main__":
    main()
