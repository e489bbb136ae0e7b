#!/usr/bin/env python3
"""A stand-in EnOcean USB300 on a pty, for the demo and the end-to-end test: it answers the
agent's bring-up and liveness pings (CO_RD_VERSION, CO_RD_IDBASE, anything else RET_OK) like
the real stick, and sends scheduled radio telegrams when the agent's simulated clock reaches
them.

  fake_usb300.py LINK SCHEDULE START SPEED [SENTLOG]

LINK      a symlink to create to the pty (the agent's [[serial]] path)
SCHEDULE  JSON list of {"at": RFC 3339, "hex": ESP3 frame} (scene.py writes one)
START     the simulated time the agent started at (its --simulate-from), RFC 3339
SPEED     how many times faster than real time the agent's clock runs
SENTLOG   optional: append "EPOCH_SECONDS HEX" for every scheduled frame as it is written
Runs until killed.
"""
import collections, datetime, json, os, select, sys, time, tty

link, schedule_file, start, speed = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
sent_log = open(sys.argv[5], "a") if len(sys.argv) > 5 else None
t0_sim = datetime.datetime.fromisoformat(start)
t0_real = time.time()
schedule = collections.deque(sorted(((datetime.datetime.fromisoformat(s["at"]) - t0_sim).total_seconds() / speed, bytes.fromhex(s["hex"]))
                                    for s in json.load(open(schedule_file))))

def crc8(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc

def esp3(ptype, data, optional=b""):
    header = bytes([len(data) >> 8, len(data) & 0xFF, len(optional), ptype])
    return bytes([0x55]) + header + bytes([crc8(header)]) + data + optional + bytes([crc8(data + optional)])

master, slave = os.openpty()
tty.setraw(slave)
name = os.ttyname(slave)
if os.path.lexists(link):
    os.unlink(link)
os.symlink(name, link)
print("fake USB300 on %s (%s)" % (link, name), flush=True)

buffer = b""
while True:
    due = schedule[0][0] - (time.time() - t0_real) if schedule else 1.0
    ready, _, _ = select.select([master], [], [], max(0.0, min(due, 0.5)))
    if ready:
        try:
            buffer += os.read(master, 4096)
        except OSError:
            time.sleep(0.1)
        # Answer every complete COMMON_COMMAND (type 5) the agent sent.
        while True:
            i = buffer.find(b"\x55")
            if i < 0 or len(buffer) < i + 6:
                break
            length, olen, ptype = (buffer[i + 1] << 8) | buffer[i + 2], buffer[i + 3], buffer[i + 4]
            end = i + 6 + length + olen + 1
            if len(buffer) < end:
                break
            data = buffer[i + 6:i + 6 + length]
            buffer = buffer[end:]
            if ptype != 5 or not data:
                continue
            if data[0] == 3:    # CO_RD_VERSION: app 2.11.1.0, api 2.6.0.1, chip id, chip version, description
                reply = bytes([0, 2, 11, 1, 0, 2, 6, 0, 1, 0xFF, 0x87, 0xCA, 0x00, 0x45, 0x4F, 0x01, 0x03]) + b"GATEWAYCTRL\0\0\0\0\0"
                os.write(master, esp3(2, reply))
            elif data[0] == 8:  # CO_RD_IDBASE
                os.write(master, esp3(2, bytes([0, 0xFF, 0x87, 0xCA, 0x00]), bytes([0x0A])))
            else:
                os.write(master, esp3(2, bytes([0])))
    while schedule and schedule[0][0] <= time.time() - t0_real:
        frame = schedule.popleft()[1]
        os.write(master, frame)
        if sent_log:
            sent_log.write("%.6f %s\n" % (time.time(), frame.hex()))
            sent_log.flush()
