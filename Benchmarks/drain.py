#!/usr/bin/env python3
"""Drain after an outage: an outbox holding EVENTS state events and ALARMS alarms (what a long
outage leaves behind) is delivered by the real agent (release build) to the reference receiver
over mutual TLS on loopback. Prints events per second, where the alarms arrived in the order,
and whether anything was lost or stored twice.

  Benchmarks/drain.py [EVENTS] [ALARMS]        default 100000 and 100

Target (issue 9): >= 10,000 events/s, alarms first.
"""
import json, os, shutil, sqlite3, subprocess, sys, tempfile, time, urllib.request
from bench_platform import ROOT as root, build, platform_config, start_agent, start_receiver, stop

events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
alarms = int(sys.argv[2]) if len(sys.argv) > 2 else 100
os.chdir(root)
bindir = build("vaktpost", "vaktpost-receiver", "outbox-probe")
work = tempfile.mkdtemp(prefix="vaktpost-drain-")
procs = []
try:
    os.makedirs(work + "/state")
    subprocess.run([bindir + "/outbox-probe", "backlog", work + "/state/outbox.sqlite", str(events), str(alarms)], check=True, stdout=subprocess.DEVNULL)
    size = os.path.getsize(work + "/state/outbox.sqlite")
    receiver, hub_port, admin_port = start_receiver(bindir, work)
    procs.append(receiver)
    open(work + "/vaktpost.toml", "w").write(platform_config(work, hub_port) + f"""
[[sensors]]
id = "bed"
role = "bed"
room = "bedroom"
transport = "enocean"
sender = "01825DAB"
eep = "A5-07-01"
[outbox]
path = "{work}/state/outbox.sqlite"
max_bytes = "1GiB"
max_rows = 2000000
""")
    started = time.time()
    agent = start_agent(bindir, work)
    procs.append(agent)
    # Count in the receiver's database (read-only): asking its admin API for every arrival
    # while it drains would load the receiver with serialising them.
    def count():
        try:
            with sqlite3.connect(f"file:{work}/receiver.sqlite?mode=ro", uri=True, timeout=5) as c:
                return c.execute("SELECT COUNT(*) FROM events WHERE type IN ('bed.state', 'fall.detected')").fetchone()[0]
        except sqlite3.Error:
            return 0
    while time.time() - started < 600 and count() < events:
        time.sleep(0.5)
    # CPU time taken so far (before the arrivals query below loads the receiver): steadier than
    # events/s on a shared machine, and what a hub's slower CPU pays for the same drain.
    def cpu(process):
        fields = open(f"/proc/{process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    cpu_agent, cpu_receiver = cpu(agent), cpu(receiver)
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/arrivals") as r:
        answer = json.load(r)
    arrivals = [a for a in answer["arrivals"] if a["type"] in ("bed.state", "fall.detected")]
    elapsed = max(a["receivedAtMs"] for a in arrivals) / 1000 - started
    positions = [i for i, a in enumerate(arrivals) if a["type"] == "fall.detected"]
    ids = [a["eventId"] for a in arrivals]
    delivering = (max(a["receivedAtMs"] for a in arrivals) - min(a["receivedAtMs"] for a in arrivals)) / 1000
    print(f"drain: {len(arrivals)} of {events} events ({alarms} alarms) from a {size >> 20} MiB outbox in {elapsed:.1f} s "
          f"= {len(arrivals) / elapsed:,.0f} events/s from the agent's start (target >= 10,000); "
          f"{len(arrivals) / delivering:,.0f} events/s from the first delivery to the last")
    print(f"  alarms arrived at positions {positions[0] + 1 if positions else '-'}..{positions[-1] + 1 if positions else '-'} of {len(arrivals)}"
          f"{' (all before any state event)' if positions and positions[-1] == len(positions) - 1 else ''}")
    print(f"  CPU: agent {cpu_agent:.2f} s (its start included), receiver {cpu_receiver:.2f} s")
    print(f"  lost: {events - len(set(ids))}, stored twice: {len(ids) - len(set(ids))}, answered as duplicates: {answer['duplicates']}")
finally:
    stop(procs)
    shutil.rmtree(work, ignore_errors=True)
