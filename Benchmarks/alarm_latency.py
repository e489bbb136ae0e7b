#!/usr/bin/env python3
"""Alarm latency, end to end: an EnOcean button press written to the receiver's pty (the fake
USB300) until the reference receiver has stored the alarm POST, over mutual TLS on loopback,
through the real agent (release build): ESP3 framing, the rule engine, the outbox's fsync, the
alarm lane, libcurl, the receiver. Presses are spaced so that none waits behind another.

  Benchmarks/alarm_latency.py [N] [INTERVAL_MS]      default 1000 presses, 50 ms apart

Prints p50/p90/p99/max in milliseconds. Target (issue 9): p99 <= 20 ms.
"""
import datetime, json, os, shutil, subprocess, sys, tempfile, time, urllib.request
from bench_platform import ROOT as root, build, platform_config, start_agent, start_receiver, stop

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
interval = (int(sys.argv[2]) if len(sys.argv) > 2 else 50) / 1000
os.chdir(root)
bindir = build("vaktpost", "vaktpost-receiver")
work = tempfile.mkdtemp(prefix="vaktpost-latency-")
procs = []
try:
    receiver, hub_port, admin_port = start_receiver(bindir, work, os.environ.get("RECEIVER_ARGS", "").split())
    procs.append(receiver)
    start = datetime.datetime.now(datetime.timezone.utc).astimezone()
    # Presses rotate over enough buttons that no sender repeats itself within a second (the
    # agent drops a copy of the same telegram within one second: EnOcean repeaters send copies).
    sys.path.insert(0, os.path.join(root, "demo"))
    from scene import esp3
    buttons = max(1, int(1.2 / interval) + 1)
    senders = ["00AB%04X" % i for i in range(buttons)]
    rocker = lambda sender, db0, status: esp3(0x01, bytes([0xF6, db0]) + bytes.fromhex(sender) + bytes([status]), bytes([1, 255, 255, 255, 255, 60, 0])).hex().upper()
    presses = {rocker(s, 0x50, 0x30) for s in senders}   # F6-02-02 BI pressed
    schedule = []
    for i in range(n):
        at = start + datetime.timedelta(seconds=3 + i * interval)
        sender = senders[i % buttons]
        schedule += [{"at": at.isoformat(), "hex": rocker(sender, 0x50, 0x30)},
                     {"at": (at + datetime.timedelta(seconds=interval / 2)).isoformat(), "hex": rocker(sender, 0x00, 0x20)}]
    json.dump(schedule, open(work + "/presses.json", "w"))
    procs.append(subprocess.Popen(["python3", "demo/fake_usb300.py", work + "/usb300", work + "/presses.json", start.isoformat(), "1", work + "/sent.log"],
                                  stdout=subprocess.DEVNULL))
    while not os.path.lexists(work + "/usb300"):
        time.sleep(0.02)
    os.makedirs(work + "/state")
    buttons_config = "".join(f"""
[[sensors]]
id = "button-{i}"
role = "button"
room = "living-room"
transport = "enocean"
sender = "{s}"
eep = "F6-02-02"
[[rules]]
id = "button-{i}"
kind = "button"
sensor = "button-{i}"
""" for i, s in enumerate(senders))
    open(work + "/vaktpost.toml", "w").write(platform_config(work, hub_port) + f"""
{buttons_config}
[outbox]
path = "{work}/state/outbox.sqlite"
[[serial]]
name = "usb300"
path = "{work}/usb300"
""")
    agent = start_agent(bindir, work)
    procs.append(agent)
    deadline = time.time() + 3 + n * interval + 30
    events = []
    while time.time() < deadline:
        time.sleep(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/arrivals") as r:
            events = [e for e in json.load(r)["arrivals"] if e["type"] == "button.pressed"]
        if len(events) >= n:
            break
    sent = [float(line.split()[0]) for line in open(work + "/sent.log") if line.split()[1].upper() in presses]
    events.sort(key=lambda e: e["seq"])
    if len(events) != n or len(sent) != n:
        sys.exit(f"only {len(events)} alarms of {len(sent)} presses arrived; see {work}/agent.log")
    lat = sorted(e["receivedAtMs"] - s * 1000 for e, s in zip(events, sent))
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    slow = [(i, round(l)) for i, l in enumerate(e["receivedAtMs"] - s * 1000 for e, s in zip(events, sent)) if l > 50]
    if os.environ.get("SHOW_SLOW"): print("slow:", slow)
    for line in open(work + "/agent.log"):
        if "took" in line:
            print("agent:", line.strip())
    print(f"alarm latency, press on the pty -> stored by the receiver, {n} alarms, {interval * 1000:.0f} ms apart (ms)")
    print(f"  p50 {q(0.50):.1f}   p90 {q(0.90):.1f}   p99 {q(0.99):.1f}   max {lat[-1]:.1f}   (target p99 <= 20)")
finally:
    stop(procs, wait=5)
    shutil.rmtree(work, ignore_errors=True)
