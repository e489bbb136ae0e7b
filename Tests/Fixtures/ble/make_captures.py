#!/usr/bin/env python3
"""Writes the BLE capture fixtures: one night of two Shelly BLU sensors, in the two btsnoop
formats the agent reads. Run it again after changing the scene; the output is committed.

  night-monitor.btsnoop  datalink 2001, as `btmon -w` writes it (with a NEW_INDEX and a command
                         record the reader must skip)
  night-h4.btsnoop       datalink 1002, HCI UART/H4 (Android's btsnoop_hci.log)

Scene (hub time Europe/Oslo, +01:00):
  23:30:00  front door (3C:2E:F5:12:34:56) opens: BTHome window=1, battery 100, legacy report, RSSI -71
  23:30:01  the same packet again (same packet id): must be dropped as a repeat
  23:31:00  front door closes, as an extended report (legacy PDU), RSSI -70
  23:45:00  fall detector (3C:2E:F5:AB:CD:EF) button press, in an event with a second report
            from an unrelated phone (manufacturer data only)
  23:45:30  a Command Complete event: no reports
"""
import struct, datetime

EPOCH_OFFSET_US = 0x00DCDDB30F2F8000

def ts(hhmmss, day=23):
    t = datetime.datetime(2026, 11, day, *hhmmss, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    return int(t.timestamp() * 1_000_000) + EPOCH_OFFSET_US

def mac_le(mac):
    return bytes(reversed(bytes.fromhex(mac.replace(":", ""))))

def ad_bthome(service_data_hex, name=None):
    data = bytes.fromhex("020106")
    if name:
        n = name.encode()
        data += bytes([len(n) + 1, 0x09]) + n
    sd = bytes.fromhex("d2fc" + service_data_hex)
    return data + bytes([len(sd) + 1, 0x16]) + sd

def legacy_report(mac, data, rssi, event_type=0x00):
    return bytes([event_type, 0x00]) + mac_le(mac) + bytes([len(data)]) + data + struct.pack("b", rssi)

def legacy_event(*reports):
    params = bytes([0x02, len(reports)]) + b"".join(reports)
    return bytes([0x3E, len(params)]) + params

def extended_event(mac, data, rssi):
    r = struct.pack("<H", 0x0013) + bytes([0x00]) + mac_le(mac) + bytes([0x01, 0x00, 0xFF, 0x7F]) + struct.pack("b", rssi)
    r += b"\x00\x00" + b"\x00" * 7 + bytes([len(data)]) + data
    params = bytes([0x0D, 0x01]) + r
    return bytes([0x3E, len(params)]) + params

door, fall, phone = "3C:2E:F5:12:34:56", "3C:2E:F5:AB:CD:EF", "5A:11:22:33:44:55"
door_open = ad_bthome("44005d016405fc21002d013f9601", "SBDW-002C")
door_closed = ad_bthome("44005e016405e406012d003f0000", "SBDW-002C")
events = [
    (ts((23, 30, 0)), legacy_event(legacy_report(door, door_open, -71))),
    (ts((23, 30, 1)), legacy_event(legacy_report(door, door_open, -71))),
    (ts((23, 31, 0)), extended_event(door, door_closed, -70)),
    (ts((23, 45, 0)), legacy_event(legacy_report(fall, ad_bthome("44001f01643a01"), -65),
                                   legacy_report(phone, bytes.fromhex("0201060bff4c0010050b1c0a3e44"), -88, 0x03))),
    (ts((23, 45, 30)), bytes.fromhex("0e0401 0c20 00".replace(" ", ""))),
]

def record(stamp, flags, data):
    return struct.pack(">IIIIq", len(data), len(data), flags, 0, stamp) + data

with open("night-monitor.btsnoop", "wb") as f:
    f.write(b"btsnoop\0" + struct.pack(">II", 1, 2001))
    f.write(record(events[0][0] - 1000, 0, bytes(1 + 1 + 6) + b"hci0\0\0\0\0"))  # NEW_INDEX
    f.write(record(events[0][0] - 500, 2, bytes.fromhex("0c2002 0100".replace(" ", ""))))  # a command: skipped
    for stamp, event in events:
        f.write(record(stamp, 3, event))

with open("night-h4.btsnoop", "wb") as f:
    f.write(b"btsnoop\0" + struct.pack(">II", 1, 1002))
    f.write(record(events[0][0] - 500, 2, b"\x01" + bytes.fromhex("0c20020100")))  # host→controller command
    for stamp, event in events:
        f.write(record(stamp, 3, b"\x04" + event))
