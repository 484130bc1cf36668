#!/usr/bin/env python3
"""A webhook receiver for the demo: verifies Mailroom's signature and prints
each delivery. The first delivery of order 1002 is answered 503 (as a busy
receiver would), so the demo shows the webhook plugin retrying it.

    WEBHOOK_SECRET=... python3 receiver.py 127.0.0.1 9000

Verifying a delivery, as any receiver should:
  1. recompute HMAC-SHA256 over "<X-Mailroom-Timestamp>.<raw body>" with the
     shared secret and compare it, in constant time, with X-Mailroom-Signature
     ("sha256=<hex>");
  2. reject timestamps older than a few minutes (a replayed delivery);
  3. drop a repeated Idempotency-Key (a redelivery after a lost answer).
"""

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["WEBHOOK_SECRET"].encode()
TOLERANCE_SECONDS = 300
seen_keys = set()
refused_once = set()


def verify(headers, body):
    timestamp = headers.get("X-Mailroom-Timestamp", "")
    signature = headers.get("X-Mailroom-Signature", "")
    expected = "sha256=" + hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "bad signature"
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return "stale timestamp"
    return None


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        problem = verify(self.headers, body)
        if problem:
            print(f"receiver: 401 {problem}", flush=True)
            return self.answer(401, problem)
        key = self.headers.get("Idempotency-Key")
        payload = json.loads(body)
        order = payload.get("order_id")
        if order == "1002" and key not in refused_once:
            refused_once.add(key)
            print(f"receiver: 503 for order {order} (busy; Mailroom will retry)", flush=True)
            return self.answer(503, "busy, try again")
        if key in seen_keys:
            print(f"receiver: 200 duplicate {key} ignored", flush=True)
            return self.answer(200, "duplicate")
        seen_keys.add(key)
        print(f"receiver: 200 signature ok, order {order}: {payload.get('message')}", flush=True)
        self.answer(200, "ok")

    def answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    ThreadingHTTPServer((host, port), Receiver).serve_forever()
