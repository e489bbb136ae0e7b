#!/usr/bin/env bash
# Footprint of the agent binary: stripped release size with the Swift stdlib linked statically,
# the shared libraries it needs, and max RSS of short commands (median of RUNS runs).
# Run it whenever a dependency is added. The daemon line: `vaktpost run` with 20 configured
# sensors (BLE replay, no platform) after IDLE seconds, VmRSS and anonymous memory from /proc.
#
#   Benchmarks/footprint.sh [RUNS]        default: 5
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
swift build -c release --product vaktpost --static-swift-stdlib >/dev/null
bin=$(swift build -c release --show-bin-path)/vaktpost
work=$(mktemp -d "${TMPDIR:-/tmp}/vaktpost-footprint-XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$bin" "$work/vaktpost"
strip "$work/vaktpost"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rss() {  # max RSS in KiB of one command, from GNU time's %M
    for _ in $(seq "$runs"); do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | median
}
printf '%-44s %s\n' "stripped binary (static Swift stdlib)" "$(( $(stat -c %s "$work/vaktpost") / 1024 )) KiB"
printf '%-44s %s\n' "unstripped" "$(( $(stat -c %s "$bin") / 1024 )) KiB"
printf '%-44s %s\n' "shared libraries needed" "$(ldd "$work/vaktpost" | wc -l)"
printf '%-44s %s\n' "links ICU (libicu*)" "$(ldd "$work/vaktpost" | grep -c libicu || true)"
printf '%-44s %s\n' "max RSS: vaktpost version" "$(rss "$work/vaktpost" version) KiB"
printf '%-44s %s\n' "max RSS: vaktpost config check (example)" "$(rss "$work/vaktpost" config check --no-files --config deploy/vaktpost.example.toml) KiB"
printf '%-44s %s\n' "max RSS: vaktpost replay (Besto)" "$(rss "$work/vaktpost" replay --config Tests/Fixtures/scenarios/home.toml --scenario Tests/Fixtures/scenarios/besto-alarm.jsonl) KiB"
idle=${IDLE:-20}
mkdir -p "$work/state"
{
    printf '[hub]\nid = "hub-bench"\ntimezone = "Europe/Oslo"\n'
    for i in $(seq 1 20); do printf '[[sensors]]\nid = "s%d"\nrole = "door"\nroom = "hallway"\ntransport = "ble"\naddress = "3C:2E:F5:00:00:%02X"\nfield = "window"\nsupervision = "2h"\n' "$i" "$i"; done
    printf '[outbox]\npath = "%s/state/outbox.sqlite"\n[ble]\nreplay = "%s/Tests/Fixtures/ble/night-monitor.btsnoop"\n' "$work" "$PWD"
} > "$work/idle.toml"
"$work/vaktpost" run --config "$work/idle.toml" --socket "$work/ctl.sock" --audit-log "$work/audit.log" >/dev/null 2>&1 &
pid=$!
sleep "$idle"
printf '%-44s %s\n' "daemon, 20 sensors, after ${idle} s: VmRSS" "$(awk '/^VmRSS/ {print $2}' /proc/$pid/status) KiB"
printf '%-44s %s\n' "daemon: anonymous memory (RssAnon)" "$(awk '/^RssAnon/ {print $2}' /proc/$pid/status) KiB"
printf '%-44s %s\n' "daemon: CPU over those seconds" "$(awk '{print ($14+$15)/100 " s"}' /proc/$pid/stat)"
kill -TERM $pid; wait $pid || true
echo "(targets for the daemon, issue 9: <= 18 MB stripped, <= 12 MB idle RSS after 10 minutes: IDLE=600)"
