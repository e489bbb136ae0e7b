#!/usr/bin/env python3
"""Side by side with a peer: the agent and syslog-ng (Debian syslog-ng-core + syslog-ng-mod-http,
reliable disk-buffer, http destination over mutual TLS) forward the same event stream to the same
reference receiver through the same outage, in one run.

  Benchmarks/peer_syslogng.py [RATE] [SECONDS] [OUTAGE_FROM] [OUTAGE_TO]
        default 250 events/s for 100 s, the receiver away from second 20 to second 80

  OUTAGE=stop   (default) the receiver process is stopped and started again: connection refused
  OUTAGE=503    the receiver stays up and answers every request 503 (a platform in maintenance)

The stream: motion sensors changing state, with a button press (an alarm) every 100th event.
The agent hears it as EnOcean telegrams on the fake USB300's pty and makes the events itself;
syslog-ng gets the same events, already made, as JSON lines on a local TCP source (its natural
input as a log forwarder), sent at the same moments. syslog-ng posts them 100 per request to the
receiver's events:ndjson, where each is stored once by eventId (it cannot send the per-request
Idempotency-Key that events:batch requires); the agent uses its own protocol.

Prints, for each and as the ratio agent/syslog-ng: RSS (median and peak, and anonymous),
CPU seconds, bytes written to disk (/proc/PID/io write_bytes) and passed to write(),
the drain after the outage (events/s), how long the outage's alarms waited after the receiver
was back, and events lost or sent more than once.
Needs root only for apt: apt-get install -y syslog-ng-core syslog-ng-mod-http
"""
import datetime, json, os, shutil, socket, sqlite3, statistics, subprocess, sys, tempfile, threading, time, uuid
from bench_platform import (ROOT as root, SENSORS, build, free_port, platform_config, rss_kib, start_agent, start_fake_usb300,
                            start_receiver, stop, stream, stream_config)

rate = float(sys.argv[1]) if len(sys.argv) > 1 else 250
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 100
outage_from = float(sys.argv[3]) if len(sys.argv) > 3 else 20
outage_to = float(sys.argv[4]) if len(sys.argv) > 4 else 80
outage = os.environ.get("OUTAGE", "stop")
if not shutil.which("syslog-ng"):
    sys.exit("syslog-ng is not installed: apt-get install -y syslog-ng-core syslog-ng-mod-http")
os.chdir(root)

bindir = build("vaktpost", "vaktpost-receiver")
work = tempfile.mkdtemp(prefix="vaktpost-peer-", dir=os.environ.get("TMPDIR", "/var/tmp"))
procs = []
def line_event(i, at, alarm):
    """The event the agent would make for stream item i, as syslog-ng forwards it."""
    kind = ("alarm", "button.pressed", "active", "0005") if alarm else ("state", "motion.state", "update", "0119" if (i // SENSORS) % 2 == 0 else "0070")
    return json.dumps({
        "schema": "hub-event/1", "eventId": str(uuid.uuid4()), "seq": i + 1, "bootId": "syslog-ng", "class": kind[0], "type": kind[1],
        "state": kind[2], "correlationId": str(uuid.uuid4()), "priority": 3 if alarm else 1, "sensor": "button" if alarm else f"motion-{i % SENSORS}",
        "room": "living-room", "occurredAt": at.isoformat(timespec="milliseconds"), "clock": {"synced": True, "boottimeNs": time.monotonic_ns()},
        "codes": {"scaip": {"dty": "0002", "stc": kind[3]}, "vkp": {}}, "data": {"value": (i // SENSORS) % 2 == 0}}, separators=(",", ":"))

class Sampler(threading.Thread):
    """VmRSS and RssAnon of a process every 0.5 s (KiB)."""
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.rss, self.anon, self.running = pid, [], [], True
    def run(self):
        while self.running:
            rss, anon = rss_kib(self.pid)
            if rss:
                self.rss.append(rss)
                self.anon.append(anon)
            time.sleep(0.5)

def proc_numbers(pid):
    """CPU seconds, bytes written to storage, bytes passed to write()."""
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    io = dict(l.split(": ") for l in open(f"/proc/{pid}/io").read().splitlines())
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"), int(io["write_bytes"]), int(io["wchar"])

try:
    receiver, hub_port, admin_port = start_receiver(bindir, work, ["--heartbeat-sec", "30"], hubs=("hub-0001", "hub-0002"))
    procs.append(receiver)
    start = datetime.datetime.now(datetime.timezone.utc).astimezone() + datetime.timedelta(seconds=4)
    count = int(rate * seconds)
    schedule, items, buttons = stream(start, rate, count)
    lines = [(at, line_event(i, at, alarm)) for i, (at, alarm) in enumerate(items)]

    # syslog-ng, configured as its documentation recommends for no loss: a reliable disk-buffer,
    # flow control back to the source, and a retry interval as short as the agent's.
    sng_port = free_port()
    os.makedirs(work + "/syslog-ng")
    open(work + "/syslog-ng.conf", "w").write(f"""@version: 3.38
options {{ stats-freq(0); keep-hostname(yes); }};
source s_events {{ network(transport("tcp") ip("127.0.0.1") port({sng_port}) flags(no-parse) log-iw-size(10000) max-connections(1)); }};
destination d_platform {{
    http(url("https://localhost:{hub_port}/v1/hubs/hub-0002/events:ndjson") method("POST")
         headers("Content-Type: application/x-ndjson")
         body("${{MSG}}") delimiter("\\n") batch-lines(100) batch-timeout(200) workers(1) time-reopen(1) timeout(10)
         tls(ca-file("{work}/pki/ca.pem") cert-file("{work}/pki/hub-0002.pem") key-file("{work}/pki/hub-0002.key") peer-verify(yes))
         disk-buffer(reliable(yes) disk-buf-size(1073741824) mem-buf-size(10485760) dir("{work}/syslog-ng")));
}};
log {{ source(s_events); destination(d_platform); flags(flow-control); }};
""")
    sng = subprocess.Popen(["syslog-ng", "-F", "-f", work + "/syslog-ng.conf", "-R", work + "/syslog-ng/persist", "-p", work + "/syslog-ng/pid",
                            "-c", work + "/syslog-ng/ctl"], stdout=subprocess.DEVNULL, stderr=open(work + "/syslog-ng.log", "w"))
    procs.append(sng)

    os.makedirs(work + "/state")
    open(work + "/vaktpost.toml", "w").write(platform_config(work, hub_port) + stream_config(buttons) + f"""
[outbox]
path = "{work}/state/outbox.sqlite"
[[serial]]
name = "usb300"
path = "{work}/usb300"
""")
    procs.append(start_fake_usb300(work, schedule))
    agent = start_agent(bindir, work)
    procs.append(agent)
    for _ in range(100):
        try:
            feed = socket.create_connection(("127.0.0.1", sng_port))
            break
        except OSError:
            time.sleep(0.05)
    samplers = {"agent": Sampler(agent.pid), "syslog-ng": Sampler(sng.pid)}
    for s in samplers.values():
        s.start()

    def feeder():
        for at, line in lines:
            delay = (at - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
            if delay > 0:
                time.sleep(delay)
            feed.sendall(line.encode() + b"\n")
    feeding = threading.Thread(target=feeder, daemon=True)
    feeding.start()

    t0 = start.timestamp()
    def at_second(s):
        time.sleep(max(0, t0 + s - time.time()))
    at_second(outage_from)
    if outage == "503":
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "POST", "-d", '{"downForSec": %d}' % (outage_to - outage_from),
                        f"http://127.0.0.1:{admin_port}/api/faults"], check=True)
    else:
        procs.remove(receiver)
        stop([receiver])
    at_second(outage_to)
    restored = time.time()
    if outage != "503":
        receiver = subprocess.Popen([bindir + "/vaktpost-receiver", "--cert", work + "/pki/server.pem", "--key", work + "/pki/server.key",
                                     "--client-ca", work + "/pki/ca.pem", "--port", hub_port, "--admin-port", admin_port,
                                     "--db", work + "/receiver.sqlite", "--ack-after", "0", "--heartbeat-sec", "30"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.insert(0, receiver)
    feeding.join()
    fed = time.time()
    # Wait until both have delivered everything (or 120 s more), then take the numbers.
    db = work + "/receiver.sqlite"
    def delivered(hub, types=("motion.state", "button.pressed")):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                return c.execute(f"SELECT count(*) FROM events WHERE hub_id = ? AND type IN ({','.join('?' * len(types))})", (hub, *types)).fetchone()[0]
        except sqlite3.Error:
            return 0
    while time.time() - fed < 120 and (delivered("hub-0001") < count or delivered("hub-0002") < count):
        time.sleep(1)
    numbers = {"agent": proc_numbers(agent.pid), "syslog-ng": proc_numbers(sng.pid)}
    for s in samplers.values():
        s.running = False
    disk = {"agent": sum(os.path.getsize(os.path.join(work, "state", f)) for f in os.listdir(work + "/state")),
            "syslog-ng": sum(os.path.getsize(os.path.join(work, "syslog-ng", f)) for f in os.listdir(work + "/syslog-ng") if f.endswith(".rqf") or f.endswith(".qf"))}
    stop([agent, sng])
    procs = [p for p in procs if p not in (agent, sng)]

    with sqlite3.connect(db, timeout=5) as c:
        rows = {h: c.execute("SELECT type, occurred_at, received_at FROM events WHERE hub_id = ? AND type IN ('motion.state', 'button.pressed') ORDER BY received_at, rowid", (h,)).fetchall()
                for h in ("hub-0001", "hub-0002")}
        dups = {h: (c.execute("SELECT value FROM counters WHERE name = ?", ("duplicates/" + h,)).fetchone() or [0])[0] for h in ("hub-0001", "hub-0002")}
    outage_start_ms, restored_ms = (t0 + outage_from) * 1000, restored * 1000
    result = {}
    for name, hub in (("agent", "hub-0001"), ("syslog-ng", "hub-0002")):
        r = rows[hub]
        occurred = [datetime.datetime.fromisoformat(o.replace("Z", "+00:00")).timestamp() * 1000 for _, o, _ in r]
        backlog = [(t, rec) for (t, _, rec), occ in zip(r, occurred) if outage_start_ms <= occ < restored_ms]
        first_after = min((rec for _, rec in backlog), default=restored_ms)
        last_backlog = max((rec for _, rec in backlog), default=restored_ms)
        alarm_waits = sorted(rec - restored_ms for t, rec in backlog if t == "button.pressed")
        result[name] = {
            "delivered": len(r), "lost": count - len(r), "twice": dups[hub],
            "rss_med": statistics.median(samplers[name].rss) / 1024, "rss_max": max(samplers[name].rss) / 1024,
            "anon_max": max(samplers[name].anon) / 1024, "cpu": numbers[name][0], "written": numbers[name][1] / 2**20, "wchar": numbers[name][2] / 2**20,
            "disk": disk[name] / 2**20, "backlog": len(backlog), "reconnect": (first_after - restored_ms) / 1000,
            "drain": len(backlog) / max(0.001, (last_backlog - first_after) / 1000), "caught_up": (last_backlog - restored_ms) / 1000,
            "alarm_wait": alarm_waits[len(alarm_waits) // 2] / 1000 if alarm_waits else float("nan"),
            "alarm_wait_max": alarm_waits[-1] / 1000 if alarm_waits else float("nan"),
        }
    a, s = result["agent"], result["syslog-ng"]
    print(f"same stream ({count} events, {count // 100} alarms, {rate:g}/s for {seconds:g} s) through the same outage "
          f"({'receiver stopped' if outage != '503' else 'receiver answering 503'} from {outage_from:g} s to {outage_to:g} s)")
    rows_out = [
        ("RSS median (MiB)", "rss_med", "{:.1f}"), ("RSS peak (MiB)", "rss_max", "{:.1f}"), ("anonymous memory peak (MiB)", "anon_max", "{:.1f}"),
        ("CPU over the run (s)", "cpu", "{:.2f}"), ("written to disk, write_bytes (MiB)", "written", "{:.1f}"),
        ("passed to write() (MiB)", "wchar", "{:.1f}"), ("queue files at the end (MiB)", "disk", "{:.1f}"),
        ("backlog at the outage's end (events)", "backlog", "{:.0f}"), ("first delivery after the receiver was back (s)", "reconnect", "{:.1f}"),
        ("drain of the backlog (events/s)", "drain", "{:,.0f}"), ("backlog delivered, after the return (s)", "caught_up", "{:.1f}"),
        ("outage's alarms delivered after the return, median (s)", "alarm_wait", "{:.2f}"), ("... and the last of them (s)", "alarm_wait_max", "{:.2f}"),
        ("events delivered", "delivered", "{:.0f}"), ("events lost", "lost", "{:.0f}"), ("events sent more than once", "twice", "{:.0f}"),
    ]
    print(f"| {'':56} | {'agent':>10} | {'syslog-ng':>10} | {'agent/syslog-ng':>15} |")
    print(f"|{'-' * 58}|{'-' * 12}|{'-' * 12}|{'-' * 17}|")
    for label, key, fmt in rows_out:
        ratio = f"{a[key] / s[key]:.2f}" if isinstance(a[key], (int, float)) and s[key] not in (0, 0.0) and s[key] == s[key] else "-"
        print(f"| {label:56} | {fmt.format(a[key]):>10} | {fmt.format(s[key]):>10} | {ratio:>15} |")
    if os.environ.get("KEEP"):
        print("kept:", work)
finally:
    stop(procs)
    if not os.environ.get("KEEP"):
        shutil.rmtree(work, ignore_errors=True)
