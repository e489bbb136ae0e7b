#!/usr/bin/env python3
"""A stand-in response platform for the uplink tests, speaking docs/openapi.yaml over mutual TLS
on loopback until the Hummingbird reference receiver exists.

  platform_stub.py CERT KEY CLIENT_CA PORT_FILE      (CLIENT_CA "-": no client certificate asked for)

It stores events once per (hub, eventId) and answers repeats as duplicates; refuses a client
certificate for another hub (403); and can be switched per lane to be down (503 + Retry-After)
or to reject (422) through POST /control/mode {"batch": "up|down|reject", "alarm": "up|down"}.
GET /control/state returns the arrivals in order and how many duplicates it saw.
Any method on /echo... answers with what the stub saw (client CN and port, body length,
Idempotency-Key); /echo/status/NNN answers with that status (429 and 503 with Retry-After: 7).
"""
import http.server, json, os, ssl, sys, threading

cert, key, client_ca, port_file = sys.argv[1:5]
lock = threading.Lock()
mode = {"batch": "up", "alarm": "up"}
arrivals, seen = [], set()
duplicates = 0

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass

    def reply(self, status, body=None, headers=()):
        out = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/problem+json" if status >= 400 and not self.path.startswith("/echo") else "application/json")
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def echo(self, body):
        peer = self.connection.getpeercert() or {}
        cn = dict(x[0] for x in peer.get("subject", ())).get("commonName")
        status = int(self.path.split("/status/")[1]) if "/status/" in self.path else 200
        self.reply(status, {"method": self.command, "path": self.path, "clientCN": cn, "clientPort": self.client_address[1],
                            "bodyLength": len(body), "idempotencyKey": self.headers.get("Idempotency-Key")},
                   [("Retry-After", "7")] if status in (429, 503) else [])

    def do_GET(self):
        if self.path.startswith("/echo"):
            return self.echo(b"")
        if self.path == "/control/state":
            with lock: return self.reply(200, {"arrivals": arrivals, "duplicates": duplicates})
        self.reply(404, {"title": "not found"})

    def do_POST(self):
        global duplicates
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/echo"):
            return self.echo(body)
        if self.path == "/control/mode":
            with lock: mode.update(json.loads(body))
            return self.reply(200, mode)
        parts = self.path.split("/")  # ['', 'v1', 'hubs', hub, what]
        if len(parts) != 5 or parts[1:3] != ["v1", "hubs"]:
            return self.reply(404, {"title": "not found"})
        hub, what = parts[3], parts[4]
        peer = self.connection.getpeercert() or {}
        cn = dict(x[0] for x in peer.get("subject", ())).get("commonName")
        if cn != hub:
            return self.reply(403, {"title": "Forbidden", "detail": "certificate is for %s, not %s" % (cn, hub)})
        lane = "alarm" if what == "alarms" else "batch"
        with lock: m = mode[lane]
        if m == "down":
            return self.reply(503, {"title": "Unavailable"}, [("Retry-After", "1")])
        if m == "reject":
            return self.reply(422, {"title": "Unprocessable", "detail": "test rejection"})
        if what == "alarms":
            event = json.loads(body)
            with lock:
                if event["eventId"] in seen: duplicates += 1
                else:
                    seen.add(event["eventId"]); arrivals.append([event["eventId"], event["class"], event["seq"], "alarm"])
            return self.reply(202, {"eventId": event["eventId"], "status": "received"}, [("Location", "/v1/hubs/%s/alarms/%s" % (hub, event["eventId"]))])
        if what == "events:batch":
            batch = json.loads(body)
            results = []
            with lock:
                for e in batch["events"]:
                    if e["eventId"] in seen:
                        duplicates += 1; results.append({"eventId": e["eventId"], "status": "duplicate"})
                    else:
                        seen.add(e["eventId"]); arrivals.append([e["eventId"], e["class"], e["seq"], "batch"])
                        results.append({"eventId": e["eventId"], "status": "accepted"})
            return self.reply(200, {"results": results, "serverTime": "2026-11-24T00:00:00+00:00"})
        self.reply(404, {"title": "not found"})

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if client_ca != "-":
    ctx.load_verify_locations(client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
open(port_file + ".tmp", "w").write(str(server.server_address[1])); os.rename(port_file + ".tmp", port_file)
server.serve_forever()
