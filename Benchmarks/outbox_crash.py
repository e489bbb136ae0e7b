#!/usr/bin/env python3
"""Outbox crash reliability: SIGKILL a writer process at KILLS random moments under load.

The writer (outbox-probe crash-writer) stores events and acknowledges batches in a loop and
prints "stored SEQ ID" after each store returns, "settling IDS" before and "acked ID" after
each acknowledgement. After all kills: every stored id is present unless acknowledged (or in
the one acknowledgement a kill interrupted), seqs only ever grew, nothing acknowledged came
back, and PRAGMA integrity_check is ok. Each kill is one check; prints "N passed, N failed".

    Benchmarks/outbox_crash.py [KILLS] [MAX_MS]     defaults: 1000 kills, up to 120 ms each
"""
import os, random, signal, sqlite3, subprocess, sys, tempfile, time

kills = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
max_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 120
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run(["swift", "build", "-c", "release", "--product", "outbox-probe"], cwd=root, check=True, stdout=subprocess.DEVNULL)
bin_path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=root, check=True, capture_output=True, text=True).stdout.strip()
probe = os.path.join(bin_path, "outbox-probe")

work = tempfile.mkdtemp(prefix="vaktpost-crash-")
db = os.path.join(work, "outbox.sqlite")
rng = random.Random(2026)
stored, acked, maybe_acked = [], set(), set()
passed = failed = 0
started = time.monotonic()

def check(run):
    """After one kill: the database opens, is intact, and holds every stored, unacknowledged id."""
    conn = sqlite3.connect(db)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        present = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    finally:
        conn.close()
    lost = [i for _, i in stored if i not in present and i not in acked and i not in maybe_acked]
    grew = all(a[0] < b[0] for a, b in zip(stored, stored[1:]))
    back = present & acked
    if ok and not lost and grew and not back:
        return True
    print(f"kill {run}: integrity={ok} lost={len(lost)} seq_grew={grew} acked_back={len(back)}", file=sys.stderr)
    return False

for run in range(kills):
    proc = subprocess.Popen([probe, "crash-writer", db, str(run)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.005, max_ms / 1000))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    text = out.decode()
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # the kill may cut the last line
    settling = set()
    for line in lines:
        parts = line.split(" ")
        if parts[0] == "stored":
            stored.append((int(parts[1]), parts[2]))
        elif parts[0] == "settling":
            settling = set(parts[1].split(","))
        elif parts[0] == "acked":
            acked.add(parts[1]); settling.discard(parts[1])
        elif parts[0] == "error":
            print(f"kill {run}: writer failed: {line}", file=sys.stderr)
    maybe_acked |= settling
    if check(run):
        passed += 1
    else:
        failed += 1

elapsed = time.monotonic() - started
print(f"{kills} kills in {elapsed:.0f} s, {len(stored)} events stored, {len(acked)} acknowledged, db {os.path.getsize(db) >> 10} KiB")
print(f"{passed} passed, {failed} failed")
subprocess.run(["rm", "-rf", work])
sys.exit(1 if failed else 0)
