#!/usr/bin/env python3
"""Writes one scripted night for the demo and the end-to-end test, in the forms the agent reads
from real hardware: a btsnoop capture of the BLE sensors (Shelly BLU door, fall detector) and an
ESP3 telegram schedule for the EnOcean bed pad (fed through a pty by fake_usb300.py).

  scene.py OUTDIR          writes OUTDIR/night.btsnoop and OUTDIR/bed.json

The night (Europe/Oslo, +01:00), the agent started at 01:45:
  01:46  Besto is in bed (EnOcean A5-07-01 occupancy, sender 01825DAB)
  01:50  the front door reports closed (BLE, BTHome window=0)
  02:10  Besto leaves bed ... and does not come back: bed.not_returned at 02:40
  02:12-02:56  the hallway motion sensor (EnOcean, sender 0512A3F1) on and off every 2 minutes
  02:20  the front door opens at night: door.opened_at_night; it closes at 02:21
  02:55  a fall is reported in the bathroom: fall.detected
"""
import json, os, struct, sys, datetime

EPOCH_OFFSET_US = 0x00DCDDB30F2F8000  # btsnoop counts microseconds from year 0
TZ = datetime.timezone(datetime.timedelta(hours=1))
DAY = (2026, 11, 24)

def at(hh, mm, ss=0):
    return datetime.datetime(*DAY, hh, mm, ss, tzinfo=TZ)

def mac_le(mac):
    return bytes(reversed(bytes.fromhex(mac.replace(":", ""))))

def ad_bthome(service_data_hex):
    sd = bytes.fromhex("d2fc" + service_data_hex)
    return bytes.fromhex("020106") + bytes([len(sd) + 1, 0x16]) + sd

def advert(mac, data, rssi):
    report = bytes([0x00, 0x00]) + mac_le(mac) + bytes([len(data)]) + data + struct.pack("b", rssi)
    params = bytes([0x02, 0x01]) + report
    return bytes([0x3E, len(params)]) + params

def record(when, flags, data):
    stamp = int(when.timestamp() * 1_000_000) + EPOCH_OFFSET_US
    return struct.pack(">IIIIq", len(data), len(data), flags, 0, stamp) + data

def crc8(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc

def esp3(ptype, data, optional):
    header = struct.pack(">HBB", len(data), len(optional), ptype)
    return bytes([0x55]) + header + bytes([crc8(header)]) + data + optional + bytes([crc8(data + optional)])

def occupancy(sender, on, rssi=62):
    # ERP1 4BS, A5-07-01: DB1 >= 128 is "occupied"/"motion"; DB0 0x08 = data telegram.
    data = bytes([0xA5, 0x55, 0x00, 0xFF if on else 0x00, 0x08]) + bytes.fromhex(sender) + bytes([0x00])
    optional = bytes([0x01]) + bytes.fromhex("FFFFFFFF") + bytes([rssi, 0x00])
    return esp3(0x01, data, optional)

DOOR, FALL = "3C:2E:F5:12:34:56", "3C:2E:F5:AB:CD:EF"

def main(out):
    os.makedirs(out, exist_ok=True)
    ble = [
        (at(1, 50), advert(DOOR, ad_bthome("440001016405e406012d00"), -70)),
        (at(2, 20), advert(DOOR, ad_bthome("440002016405fc21002d01"), -71)),
        (at(2, 21), advert(DOOR, ad_bthome("440003016405e406012d00"), -70)),
        (at(2, 55), advert(FALL, ad_bthome("44000401643a01"), -65)),
    ]
    with open(os.path.join(out, "night.btsnoop"), "wb") as f:
        f.write(b"btsnoop\0" + struct.pack(">II", 1, 2001))
        for when, event in ble:
            f.write(record(when, 3, event))
    bed = [(at(1, 46), occupancy("01825DAB", True)), (at(2, 10), occupancy("01825DAB", False))]
    # Besto wanders: the hallway motion sensor on and off every two minutes until 02:58,
    # state events that pile up in the bulk lane while the platform is down.
    for minute in range(12, 58, 2):
        bed.append((at(2, minute), occupancy("0512A3F1", minute % 4 == 0, rssi=70)))
    bed.sort(key=lambda x: x[0])
    with open(os.path.join(out, "bed.json"), "w") as f:
        json.dump([{"at": when.isoformat(), "hex": frame.hex().upper()} for when, frame in bed], f, indent=1)

if __name__ == "__main__":
    main(sys.argv[1])
