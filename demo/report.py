#!/usr/bin/env python3
"""Prints the demo night as the receiver stored it: a timeline by the hub's clock, when each
event reached the platform, and a summary (events sent and acknowledged, alarm latencies).

  report.py ADMIN_URL START SPEED T0_REAL

START/SPEED: the agent's simulated clock; T0_REAL: the real time (epoch seconds) it started,
so that "how long after it happened did the platform have it" is measured in real seconds.
"""
import datetime, json, sys, urllib.request

admin, start, speed, t0_real = sys.argv[1], datetime.datetime.fromisoformat(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])

def get(path):
    with urllib.request.urlopen(admin + path) as r:
        return json.load(r)

events = get("/api/hubs/hub-0001/events?limit=1000")["events"]
arrivals = get("/api/arrivals")
order = {a["eventId"]: i for i, a in enumerate(arrivals["arrivals"])}

def real_when(occurred):
    return t0_real + (datetime.datetime.fromisoformat(occurred) - start).total_seconds() / speed

rows = []
for e in events:
    ev = e["event"]
    latency = e["receivedAtMs"] / 1000 - real_when(ev["occurredAt"])
    rows.append((ev["occurredAt"], ev, e, latency))
rows.sort(key=lambda r: (r[0], r[1]["seq"]))

print("\nTIMELINE (hub time; delay = real seconds from the event to the platform having it)")
for occurred, ev, e, latency in rows:
    place = " · ".join(x for x in [ev.get("deviceId"), (ev.get("location") or {}).get("text")] if x)
    handling = (e.get("handling") or {}).get("status", "")
    mark = "ALARM" if ev["class"] == "alarm" else ev["class"]
    print("  %s  %-9s %-22s %-8s %-24s arrived #%-3d delay %5.1f s  %s" % (
        occurred[11:19], mark, ev["type"], ev["state"], place, order.get(ev["eventId"], -1) + 1, max(0.0, latency), handling))

alarms = [r for r in rows if r[1]["class"] == "alarm"]
acknowledged = [r for r in alarms if (r[2].get("handling") or {}).get("status") in ("acknowledged", "closed")]
print("\nSUMMARY")
print("  events stored by the platform: %d (duplicates refused: %d), heartbeats: %d" % (len(events), arrivals["duplicates"], arrivals["heartbeats"]))
print("  alarms: %d, acknowledged by the operator: %d" % (len(alarms), len(acknowledged)))
for occurred, ev, e, latency in alarms:
    print("    %-22s at %s reached the platform after %.2f s" % (ev["type"], occurred[11:19], max(0.0, latency)))
after_outage = [a for a in arrivals["arrivals"] if a.get("outage")]
seqs = [r[1]["seq"] for r in rows]
gaps = sorted(set(range(min(seqs), max(seqs) + 1)) - set(seqs)) if seqs else []
print("  seq %d..%d, missing: %s" % (min(seqs), max(seqs), gaps or "none"))
