#!/usr/bin/env python3
"""Writes Sources/vaktpost/hot-functions.order: the functions a running hub executes, for the
release link to lay out together (Package.swift passes it to lld as --symbol-ordering-file).

Why: the linker places functions in the order of the object files, so the few hundred kilobytes
a hub runs (start-up, the rules loop, the outbox, the uplink) are spread over most of the
binary's 7 MB of code, and the kernel maps every 64 KB window that one of them touches. Laid
out together they need a third of that resident (docs/benchmarks.md, Footprint).

The profile: the release agent, stripped, under `valgrind --tool=callgrind` for PROFILE_SECONDS
(default 60), with what a hub does: 20 BLE sensors from a capture, EnOcean motion sensors and
button presses (alarms) on the fake USB300's pty, the reference receiver over mutual TLS, and a
test alarm through the control socket. Every executed address is mapped to its function with
`nm` on the unstripped binary. A function missing from the file is only placed elsewhere, so a
stale file costs memory, never correctness; `Benchmarks/footprint.sh` prints how many of the
listed functions the binary still has. Re-run after large changes:

  Benchmarks/order_file.py            (needs valgrind: apt-get install -y valgrind)
"""
import bisect, datetime, os, re, shutil, signal, subprocess, sys, tempfile, time
from bench_platform import ROOT, agent_environment, build, platform_config, start_fake_usb300, start_receiver, stop, stream, stream_config

seconds = int(os.environ.get("PROFILE_SECONDS", "60"))
if not shutil.which("valgrind"):
    sys.exit("valgrind is missing: apt-get install -y valgrind")
os.chdir(ROOT)
# The agent as it ships: the Swift runtime and stdlib linked in, their hot functions ordered too.
bindir = build("vaktpost", "vaktpost-receiver")
work = tempfile.mkdtemp(prefix="vaktpost-order-")
procs = []
try:
    receiver, hub_port, _ = start_receiver(bindir, work)
    procs.append(receiver)
    # valgrind runs the agent some 50 times slower: a slow stream, started after its start-up.
    start = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=15)
    schedule, _, buttons = stream(start, rate=5, count=5 * (seconds - 20), alarm_every=10)
    procs.append(start_fake_usb300(work, schedule))
    os.makedirs(work + "/state")
    ble = "".join(f'[[sensors]]\nid = "door-{i}"\nrole = "door"\nroom = "hallway"\ntransport = "ble"\n'
                  f'address = "3C:2E:F5:00:00:{i:02X}"\nfield = "window"\nsupervision = "2h"\n' for i in range(1, 21))
    open(work + "/vaktpost.toml", "w").write(platform_config(work, hub_port) + stream_config(buttons) + ble + f"""
[outbox]
path = "{work}/state/outbox.sqlite"
[ble]
replay = "{ROOT}/Tests/Fixtures/ble/night-monitor.btsnoop"
[[serial]]
name = "usb300"
path = "{work}/usb300"
""")
    # valgrind cannot read the unstripped binary's DWARF; the stripped copy runs, nm reads the other.
    shutil.copy(bindir + "/vaktpost", work + "/vaktpost")
    subprocess.run(["strip", work + "/vaktpost"], check=True)
    agent = subprocess.Popen(["valgrind", "--tool=callgrind", "--dump-instr=yes", f"--callgrind-out-file={work}/callgrind.out",
                              work + "/vaktpost", "run", "--config", work + "/vaktpost.toml", "--socket", work + "/ctl.sock",
                              "--audit-log", work + "/audit.log"], stdout=subprocess.DEVNULL, stderr=open(work + "/agent.log", "w"), env=agent_environment())
    time.sleep(seconds / 2)
    subprocess.run([bindir + "/vaktpost", "test-alarm", "--socket", work + "/ctl.sock"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    time.sleep(seconds / 2)
    agent.send_signal(signal.SIGTERM)
    agent.wait(120)

    # Executed instruction addresses in the agent's own object (callgrind's compressed positions:
    # absolute 0x..., or +N/-N from the previous line's, or * for the same).
    executed, obj, last, names = set(), None, 0, {}
    for line in open(work + "/callgrind.out"):
        m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3).strip()
            if m.group(1) == "ob":
                obj = names[m.group(2)]
            continue
        token = line.split()[0] if line.strip() else ""
        if not token or "=" in token or token[0] not in "0123456789+-*":
            continue
        last = last if token == "*" else last + int(token) if token[0] in "+-" else int(token, 0)
        if obj == work + "/vaktpost":
            executed.add(last)
    functions = []
    for line in subprocess.run(["nm", "-S", "--defined-only", bindir + "/vaktpost"], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW":
            functions.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
    functions.sort()
    starts = [f[0] for f in functions]
    hot = {}
    for address in executed:
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and address < functions[i][0] + functions[i][1]:
            hot[functions[i][2]] = functions[i]
    if len(hot) < 500:
        sys.exit(f"only {len(hot)} functions executed: the profile did not run; see {work}/agent.log")
    # In the profiled binary's order: callers beside callees of the same file stay together.
    ordered = sorted(hot.values())
    path = os.path.join(ROOT, "Sources/vaktpost/hot-functions.order")
    with open(path, "w") as f:
        f.writelines(name + "\n" for _, _, name in ordered)
    # SwiftPM does not know the link reads this file: remove the binary so that the next build links anew.
    os.remove(bindir + "/vaktpost")
    print(f"{len(ordered)} functions, {sum(size for _, size, _ in ordered) // 1024} KiB of code, executed in {seconds} s -> {os.path.relpath(path, ROOT)}")
finally:
    stop(procs)
    shutil.rmtree(work, ignore_errors=True)
