#!/usr/bin/env bash
# The demo: the real agent through a scripted night at 60x speed, against the reference receiver
# over mutual TLS, with sensor frames from a BLE capture and from a fake EnOcean stick on a pty.
# Besto leaves bed at 02:10 and does not return (alarm at 02:40); the front door opens at 02:20;
# the platform is down from 02:30 to 02:50; a fall at 02:55. Prints a timeline and a summary,
# and leaves the receiver's page open. About 90 seconds after the build.
#
#   demo/run.sh                 SPEED=60 ADMIN_PORT=8080 VAKTPOST_DEMO_DIR=/tmp/vaktpost-demo
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${VAKTPOST_DEMO_DIR:-/tmp/vaktpost-demo}
SPEED=${SPEED:-60}
ADMIN_PORT=${ADMIN_PORT:-8080}
START=2026-11-24T01:45:00+01:00

pkill -f "vaktpost-receiver.*$DIR" 2>/dev/null || true
rm -rf "$DIR" && mkdir -p "$DIR/state"
echo "== building"
swift build --product vaktpost >/dev/null && swift build --product vaktpost-receiver >/dev/null
BIN=$(swift build --show-bin-path)

echo "== dev PKI, the night's sensor data"
deploy/pki.sh "$DIR/pki" hub-0001 >/dev/null
python3 demo/scene.py "$DIR"

echo "== reference receiver (operators acknowledge alarms after 5 s)"
"$BIN/vaktpost-receiver" --cert "$DIR/pki/server.pem" --key "$DIR/pki/server.key" --client-ca "$DIR/pki/ca.pem" \
    --port 0 --admin-port "$ADMIN_PORT" --port-file "$DIR/ports" --db "$DIR/receiver.sqlite" --ack-after 5 >"$DIR/receiver.log" 2>&1 &
for _ in $(seq 100); do [ -s "$DIR/ports" ] && break; sleep 0.1; done
[ -s "$DIR/ports" ] || { echo "the receiver did not start:"; cat "$DIR/receiver.log"; exit 1; }
read -r HUB_PORT ADMIN_PORT < "$DIR/ports"
ADMIN="http://127.0.0.1:$ADMIN_PORT"

sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$HUB_PORT|g" demo/vaktpost.toml.in > "$DIR/vaktpost.toml"
chmod 640 "$DIR/vaktpost.toml"
"$BIN/vaktpost" config check --config "$DIR/vaktpost.toml" | head -3

echo "== the agent, on a clock starting $START at ${SPEED}x"
T0=$(date +%s.%N)
python3 demo/fake_usb300.py "$DIR/usb300" "$DIR/bed.json" "$START" "$SPEED" >"$DIR/usb300.log" 2>&1 &
FAKE=$!
sleep 0.3
"$BIN/vaktpost" run --config "$DIR/vaktpost.toml" --socket "$DIR/control.sock" --audit-log "$DIR/audit.log" \
    --simulate-from "$START" --speed "$SPEED" >"$DIR/agent.log" 2>&1 &
AGENT=$!
trap 'kill $AGENT $FAKE 2>/dev/null || true' EXIT

# Wait until the simulated clock reads HH:MM.
until_sim() { python3 -c "
import datetime, time
t = datetime.datetime.fromisoformat('$START').replace(hour=int('$1'[:2]), minute=int('$1'[3:]))
left = $T0 + (t - datetime.datetime.fromisoformat('$START')).total_seconds() / $SPEED - time.time()
time.sleep(max(0, left))"; }
status() { "$BIN/vaktpost" status --socket "$DIR/control.sock" | sed -n '1,4p;/OPEN ALARMS/,$p'; }

until_sim 02:25; echo "== 02:25"; status
until_sim 02:30; echo "== 02:30 the platform goes down for 20 minutes"
curl -s -X POST "$ADMIN/api/faults" -d "{\"downForSec\": $((20 * 60 / SPEED)), \"retryAfterSec\": 1}" >/dev/null
until_sim 02:45; echo "== 02:45 (the platform is down; the bed alarm waits in the outbox)"; status
until_sim 02:50; echo "== 02:50 the platform is back: alarms go first"
until_sim 03:00
for _ in $(seq 60); do
    depth=$("$BIN/vaktpost" status --json --socket "$DIR/control.sock" | python3 -c "import json,sys; o=json.load(sys.stdin)['outbox']; print(o['alarmLane']+o['bulkLane'])")
    [ "$depth" = 0 ] && break
    sleep 0.5
done
echo "== 03:00"; status
"$BIN/vaktpost" test-alarm --socket "$DIR/control.sock" --timeout 30 || true
kill -TERM $AGENT; wait $AGENT || true
kill $FAKE 2>/dev/null || true
trap - EXIT
python3 demo/report.py "$ADMIN" "$START" "$SPEED" "$T0"
echo
echo "The receiver keeps running: open $ADMIN/ (stop it with: pkill -f vaktpost-receiver)."
echo "Agent log: $DIR/agent.log · audit log: $DIR/audit.log · everything: $DIR"
