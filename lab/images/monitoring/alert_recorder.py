# The lab's webhook receiver, run by monitoring-entrypoint with python3 (stdlib only).
"""A webhook receiver for Alertmanager that keeps what it is sent.

POST any path: the JSON body is appended, with the time it arrived, as one line of /var/lib/alert-recorder/alerts.jsonl.
GET /alerts: every notification received so far, oldest first, as a JSON array of
  {"received_at": <unix time>, "notification": <Alertmanager's webhook payload>}.
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECORD = os.environ.get("ALERT_RECORD", "/var/lib/alert-recorder/alerts.jsonl")
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            notification = json.loads(body)
        except ValueError:
            self.send_error(400, "not JSON")
            return
        with LOCK, open(RECORD, "a") as record:
            record.write(json.dumps({"received_at": time.time(), "notification": notification}) + "\n")
        self.send_response(200)
        self.end_headers()

    def do_GET(self):
        if self.path != "/alerts":
            self.send_error(404, "GET /alerts")
            return
        with LOCK, open(RECORD) as record:
            body = ("[" + ",".join(line.strip() for line in record if line.strip()) + "]").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    os.makedirs(os.path.dirname(RECORD), exist_ok=True)
    open(RECORD, "a").close()
    ThreadingHTTPServer(("", int(os.environ.get("ALERT_RECORDER_PORT", "9095"))), Handler).serve_forever()
