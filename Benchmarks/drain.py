#!/usr/bin/env python3
"""Drain after an outage: an outbox holding EVENTS state events and ALARMS alarms (what a long
outage leaves behind) is delivered by the real agent (release build) to the reference receiver
over mutual TLS on loopback. Prints events per second, where the alarms arrived in the order,
and whether anything was lost or stored twice.

  Benchmarks/drain.py [EVENTS] [ALARMS]        default 100000 and 100

Target (issue 9): >= 10,000 events/s, alarms first.
"""
import json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request

events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
alarms = int(sys.argv[2]) if len(sys.argv) > 2 else 100
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
for product in ("vaktpost", "vaktpost-receiver", "outbox-probe"):
    subprocess.run(["swift", "build", "-c", "release", "--product", product], check=True, stdout=subprocess.DEVNULL)
bindir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], check=True, capture_output=True, text=True).stdout.strip()
work = tempfile.mkdtemp(prefix="vaktpost-drain-")
procs = []
try:
    os.makedirs(work + "/state")
    subprocess.run([bindir + "/outbox-probe", "backlog", work + "/state/outbox.sqlite", str(events), str(alarms)], check=True, stdout=subprocess.DEVNULL)
    size = os.path.getsize(work + "/state/outbox.sqlite")
    subprocess.run(["deploy/pki.sh", work + "/pki", "hub-0001"], check=True, stdout=subprocess.DEVNULL)
    procs.append(subprocess.Popen([bindir + "/vaktpost-receiver", "--cert", work + "/pki/server.pem", "--key", work + "/pki/server.key",
                                   "--client-ca", work + "/pki/ca.pem", "--port", "0", "--admin-port", "0", "--port-file", work + "/ports",
                                   "--db", work + "/receiver.sqlite", "--ack-after", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    while not os.path.exists(work + "/ports") or not open(work + "/ports").read().strip():
        time.sleep(0.05)
    hub_port, admin_port = open(work + "/ports").read().split()
    open(work + "/vaktpost.toml", "w").write(f"""
[hub]
id = "hub-0001"
[platform]
url = "https://localhost:{hub_port}"
ca_file = "{work}/pki/ca.pem"
client_cert = "{work}/pki/hub-0001.pem"
client_key = "{work}/pki/hub-0001.key"
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
    procs.append(subprocess.Popen([bindir + "/vaktpost", "run", "--config", work + "/vaktpost.toml", "--socket", work + "/ctl.sock",
                                   "--audit-log", work + "/audit.log"], stdout=subprocess.DEVNULL, stderr=open(work + "/agent.log", "w")))
    arrivals = []
    while time.time() - started < 600:
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/arrivals") as r:
            answer = json.load(r)
        arrivals = [a for a in answer["arrivals"] if a["type"] in ("bed.state", "fall.detected")]
        if len(arrivals) >= events:
            break
    elapsed = max(a["receivedAtMs"] for a in arrivals) / 1000 - started
    positions = [i for i, a in enumerate(arrivals) if a["type"] == "fall.detected"]
    ids = [a["eventId"] for a in arrivals]
    print(f"drain: {len(arrivals)} of {events} events ({alarms} alarms) from a {size >> 20} MiB outbox in {elapsed:.1f} s "
          f"= {len(arrivals) / elapsed:,.0f} events/s (target >= 10,000)")
    print(f"  alarms arrived at positions {positions[0] + 1 if positions else '-'}..{positions[-1] + 1 if positions else '-'} of {len(arrivals)}"
          f"{' (all before any state event)' if positions and positions[-1] == len(positions) - 1 else ''}")
    print(f"  lost: {events - len(set(ids))}, stored twice: {len(ids) - len(set(ids))}, answered as duplicates: {answer['duplicates']}")
finally:
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
