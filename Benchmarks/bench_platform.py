"""What the uplink benchmarks share: a release build, a dev PKI, the reference receiver on
loopback, the hub's [platform] section for it, and stopping everything afterwards."""
import os, signal, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def build(*products):
    """Builds the products in release, the agent as it ships (the Swift stdlib linked in, as
    deploy/install.sh builds it); the directory holding them. VAKTPOST_BINDIR names another
    build's directory instead (another commit's, to compare in turns on this noisy machine)."""
    if os.environ.get("VAKTPOST_BINDIR"):
        return os.environ["VAKTPOST_BINDIR"]
    for product in products:
        static = ["--static-swift-stdlib"] if product == "vaktpost" else []
        subprocess.run(["swift", "build", "-c", "release", "--product", product, *static], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()

def start_receiver(bindir, work, extra=(), hubs=("hub-0001",)):
    """A dev PKI for HUBS in WORK/pki and the receiver (acknowledging at once, unless EXTRA says
    `--ack-after`); (process, hub port, admin port)."""
    subprocess.run([os.path.join(ROOT, "deploy/pki.sh"), work + "/pki", *hubs], check=True, stdout=subprocess.DEVNULL)
    acknowledge = [] if "--ack-after" in extra else ["--ack-after", "0"]
    receiver = subprocess.Popen([bindir + "/vaktpost-receiver", "--cert", work + "/pki/server.pem", "--key", work + "/pki/server.key",
                                 "--client-ca", work + "/pki/ca.pem", "--port", "0", "--admin-port", "0", "--port-file", work + "/ports",
                                 "--db", work + "/receiver.sqlite", *acknowledge, *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(work + "/ports") or not open(work + "/ports").read().strip():
        time.sleep(0.05)
    hub_port, admin_port = open(work + "/ports").read().split()
    return receiver, hub_port, admin_port

def platform_section(work, hub_port):
    """[platform] of a config for hub-0001 against that receiver."""
    return f"""[platform]
url = "https://localhost:{hub_port}"
ca_file = "{work}/pki/ca.pem"
client_cert = "{work}/pki/hub-0001.pem"
client_key = "{work}/pki/hub-0001.key"
"""

def platform_config(work, hub_port):
    """[hub] and [platform] of a config for hub-0001 against that receiver."""
    return '\n[hub]\nid = "hub-0001"\n' + platform_section(work, hub_port)

if __name__ == "__main__":
    # For Benchmarks/footprint.sh: `bench_platform.py receiver BINDIR WORK` starts the receiver
    # (left running) and prints its pid and hub port, then the [platform] section for it.
    import sys
    if sys.argv[1:2] == ["receiver"] and len(sys.argv) == 4:
        receiver, hub_port, _ = start_receiver(sys.argv[2], sys.argv[3])
        print(receiver.pid, hub_port)
        print(platform_section(sys.argv[3], hub_port), end="")
    else:
        sys.exit("usage: bench_platform.py receiver BINDIR WORK")

def stop(processes, wait=10):
    """SIGTERM, newest first; SIGKILL what does not stop in time."""
    for p in reversed(processes):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()

# The event stream the uplink benchmarks and the reliability harness feed the agent: EnOcean
# motion sensors changing state (every telegram a change, so one event each) and button presses
# (alarms), sent by demo/fake_usb300.py on a pty.

SENSORS = 20

def esp3(ptype, data, optional):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "demo"))
    from scene import esp3 as frame
    return frame(ptype, data, optional)

def motion(sender, on, counter):
    """A5-07-01; DB3 and DB2 (unused here: DB0 says no supply voltage) carry a 16-bit counter so
    that no telegram repeats itself within a second (the agent drops such copies: EnOcean
    repeaters send them)."""
    data = bytes([0xA5, (counter >> 8) & 0xFF, counter & 0xFF, 0xFF if on else 0x00, 0x08]) + bytes.fromhex(sender) + bytes([0x00])
    return esp3(0x01, data, bytes([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00]))

def rocker(sender, db0, status):
    return esp3(0x01, bytes([0xF6, db0]) + bytes.fromhex(sender) + bytes([status]), bytes([1, 255, 255, 255, 255, 60, 0]))

MOTION_SENDERS = ["0510%04X" % s for s in range(SENSORS)]

def button_sender(b):
    return "00AB%04X" % b

def stream(start, rate, count, alarm_every=100):
    """COUNT items at RATE per second from START (a datetime): a button press every ALARM_EVERY-th,
    motion changes otherwise. Returns (schedule for fake_usb300, [(at, is_alarm)], buttons).
    Each sensor's first telegram only tells the agent its state: those go a second before."""
    import datetime
    buttons = max(2, int(1.5 * rate / alarm_every) + 1)  # no button twice within 1.5 s
    schedule, items, moves = [], [], 0
    for n, sender in enumerate(MOTION_SENDERS):
        schedule.append({"at": (start - datetime.timedelta(seconds=1) + datetime.timedelta(milliseconds=10 * n)).isoformat(),
                         "hex": motion(sender, False, 255).hex()})
    for i in range(count):
        at = start + datetime.timedelta(seconds=i / rate)
        alarm = i % alarm_every == alarm_every - 1
        if alarm:
            b = button_sender(i // alarm_every % buttons)
            schedule += [{"at": at.isoformat(), "hex": rocker(b, 0x50, 0x30).hex()},
                         {"at": (at + datetime.timedelta(seconds=0.5 / rate)).isoformat(), "hex": rocker(b, 0x00, 0x20).hex()}]
        else:
            sensor, nth = moves % SENSORS, moves // SENSORS
            schedule.append({"at": at.isoformat(), "hex": motion(MOTION_SENDERS[sensor], nth % 2 == 0, nth).hex()})
            moves += 1
        items.append((at, alarm))
    return schedule, items, buttons

def stream_config(buttons):
    """[[sensors]] and [[rules]] for the stream's motion sensors and buttons."""
    motion_sensors = "".join(f'[[sensors]]\nid = "motion-{n}"\nrole = "motion"\nroom = "living-room"\ntransport = "enocean"\nsender = "{s}"\neep = "A5-07-01"\n'
                             for n, s in enumerate(MOTION_SENDERS))
    return motion_sensors + "".join(
        f'[[sensors]]\nid = "button-{b}"\nrole = "button"\nroom = "living-room"\ntransport = "enocean"\nsender = "{button_sender(b)}"\neep = "F6-02-02"\n'
        f'[[rules]]\nid = "button-{b}"\nkind = "button"\nsensor = "button-{b}"\n' for b in range(buttons))

def start_fake_usb300(work, schedule, name="usb300", start=None, speed=1):
    """The fake stick on WORK/NAME sending SCHEDULE; START: the time its clock begins at (now)."""
    import datetime, json
    json.dump(schedule, open(f"{work}/{name}.json", "w"))
    start = start or datetime.datetime.now(datetime.timezone.utc)
    p = subprocess.Popen(["python3", os.path.join(ROOT, "demo/fake_usb300.py"), f"{work}/{name}", f"{work}/{name}.json", start.isoformat(), str(speed)],
                         stdout=subprocess.DEVNULL)
    while not os.path.lexists(f"{work}/{name}"):
        time.sleep(0.02)
    return p

def agent_environment(extra=None):
    """This environment with deploy/vaktpost.service's Environment= lines (and EXTRA): the agent
    runs in the benchmarks as it runs on a hub."""
    env = dict(os.environ)
    for line in open(os.path.join(ROOT, "deploy/vaktpost.service")):
        if line.startswith("Environment="):
            name, _, value = line.strip()[len("Environment="):].partition("=")
            env[name] = value
    env.update(extra or {})
    return env

def start_agent(bindir, work, config="vaktpost.toml", args=(), env=None, log="agent.log", store=None, prefix=()):
    """The agent; STORE: a DescriptorStore standing in for systemd, which starts it; PREFIX: a
    command that execs the agent's (its pid is the agent's then)."""
    command = [*prefix, bindir + "/vaktpost", "run", "--config", f"{work}/{config}", "--socket", f"{work}/ctl.sock", "--audit-log", f"{work}/audit.log", *args]
    output = dict(stdout=subprocess.DEVNULL, stderr=open(f"{work}/{log}", "a"))
    if store:
        return store.popen(command, agent_environment(env), **output)
    return subprocess.Popen(command, env=agent_environment(env), **output)

class DescriptorStore:
    """systemd's file descriptor store as deploy/vaktpost.service has it (FileDescriptorStoreMax=,
    see systemd.io/FILE_DESCRIPTOR_STORE): a notify socket keeping every descriptor sent with
    FDSTORE=1 under its FDNAME until FDSTOREREMOVE=1 names it, and starts that hand them over
    as systemd does, from fd 3 on with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID."""
    # Runs between fork and the agent: moves the descriptors to 3, 4, ... and names this pid.
    HANDOVER = ("import fcntl, os, sys\n"
                "fds = [int(x) for x in sys.argv[1].split(',') if x]\n"
                "high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]\n"
                "for i, fd in enumerate(high): os.dup2(fd, 3 + i)\n"
                "for fd in high: os.close(fd)\n"
                "os.environ['LISTEN_PID'] = str(os.getpid())\n"
                "os.execv(sys.argv[2], sys.argv[2:])\n")

    def __init__(self, path):
        import socket, threading
        self.path, self.kept, self.lock = path, [], threading.Lock()
        # EXTEND_TIMEOUT_USEC: the stop may run until then (monotonic), and how often it was asked.
        self.extended_until, self.extensions = 0.0, 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        import array, socket
        while True:
            try:
                text, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
            except OSError:
                return
            fds = array.array("i")
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
            fields = dict(l.split("=", 1) for l in text.decode(errors="replace").splitlines() if "=" in l)
            name = fields.get("FDNAME", "stored")
            with self.lock:
                if fields.get("EXTEND_TIMEOUT_USEC", "").isdigit():
                    self.extended_until = max(self.extended_until, time.monotonic() + int(fields["EXTEND_TIMEOUT_USEC"]) / 1e6)
                    self.extensions += 1
                if fields.get("FDSTOREREMOVE") == "1":
                    for n, fd in [k for k in self.kept if k[0] == name]:
                        os.close(fd)
                        self.kept.remove((n, fd))
                if fields.get("FDSTORE") == "1":
                    self.kept += [(name, fd) for fd in fds]
                    fds = []
            for fd in fds:
                os.close(fd)

    def stop_unit(self, process, timeout=10):
        """Stops PROCESS as systemd stops the unit: SIGTERM, then SIGKILL once TimeoutStopSec
        (TIMEOUT, 10 s in deploy/vaktpost.service) has passed, unless the agent asked for more
        time with EXTEND_TIMEOUT_USEC. True if it stopped by itself."""
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            with self.lock:
                deadline = max(deadline, self.extended_until)
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                return False
            time.sleep(0.1)
        return True

    def names(self):
        with self.lock:
            return [n for n, _ in self.kept]

    def popen(self, command, env, **kwargs):
        """Starts COMMAND as systemd starts the unit: NOTIFY_SOCKET, and the kept descriptors."""
        import sys
        with self.lock:
            kept = list(self.kept)
        env = dict(env, NOTIFY_SOCKET=self.path, LISTEN_FDS=str(len(kept)), LISTEN_FDNAMES=":".join(n for n, _ in kept))
        if not kept:
            for k in ("LISTEN_FDS", "LISTEN_FDNAMES"):
                env.pop(k)
        return subprocess.Popen([sys.executable, "-c", self.HANDOVER, ",".join(str(fd) for _, fd in kept), *command],
                                pass_fds=[fd for _, fd in kept], env=env, **kwargs)

    def close(self):
        self.sock.close()
        with self.lock:
            for _, fd in self.kept:
                os.close(fd)
            self.kept = []

def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def rss_kib(pid):
    """VmRSS and RssAnon of a live process, KiB; (0, 0) when it is gone."""
    try:
        status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
        return int(status["VmRSS"].split()[0]), int(status["RssAnon"].split()[0])
    except (OSError, KeyError):
        return 0, 0
