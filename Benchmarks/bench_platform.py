"""What the uplink benchmarks share: a release build, a dev PKI, the reference receiver on
loopback, the hub's [platform] section for it, and stopping everything afterwards."""
import os, signal, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def build(*products):
    """Builds the products in release; the directory holding them."""
    for product in products:
        subprocess.run(["swift", "build", "-c", "release", "--product", product], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()

def start_receiver(bindir, work, extra=(), hubs=("hub-0001",)):
    """A dev PKI for HUBS in WORK/pki and the receiver (acknowledging at once); (process, hub port, admin port)."""
    subprocess.run([os.path.join(ROOT, "deploy/pki.sh"), work + "/pki", *hubs], check=True, stdout=subprocess.DEVNULL)
    receiver = subprocess.Popen([bindir + "/vaktpost-receiver", "--cert", work + "/pki/server.pem", "--key", work + "/pki/server.key",
                                 "--client-ca", work + "/pki/ca.pem", "--port", "0", "--admin-port", "0", "--port-file", work + "/ports",
                                 "--db", work + "/receiver.sqlite", "--ack-after", "0", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(work + "/ports") or not open(work + "/ports").read().strip():
        time.sleep(0.05)
    hub_port, admin_port = open(work + "/ports").read().split()
    return receiver, hub_port, admin_port

def platform_config(work, hub_port):
    """[hub] and [platform] of a config for hub-0001 against that receiver."""
    return f"""
[hub]
id = "hub-0001"
[platform]
url = "https://localhost:{hub_port}"
ca_file = "{work}/pki/ca.pem"
client_cert = "{work}/pki/hub-0001.pem"
client_key = "{work}/pki/hub-0001.key"
"""

def stop(processes, wait=10):
    """SIGTERM, newest first; SIGKILL what does not stop in time."""
    for p in reversed(processes):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
