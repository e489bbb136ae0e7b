#!/usr/bin/env bash
# Footprint of the agent binary: stripped release size with the Swift stdlib linked statically,
# the shared libraries it needs, and max RSS of short commands (median of RUNS runs).
# Run it whenever a dependency is added. The daemon lines: `vaktpost run` with 20 configured
# sensors (BLE replay, no platform), in the environment deploy/vaktpost.service gives it, after
# IDLE seconds: VmRSS, PSS and anonymous memory from /proc, the working set (pages touched in the
# last minute: smaps' Referenced after clear_refs), and where the resident pages are, by mapping.
# With PLATFORM=1 the daemon also has what a hub has: the reference receiver on loopback (mutual
# TLS, HTTP/2), so heartbeats, the command poll and the uplink's TLS state are in the numbers.
#
#   Benchmarks/footprint.sh [RUNS]        default: 5
#   IDLE=600 PLATFORM=1 Benchmarks/footprint.sh 3
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
# Functions named in the layout file that the binary no longer has: past a few hundred, re-run
# Benchmarks/order_file.py (a stale file costs resident memory, nothing else).
order=Sources/vaktpost/hot-functions.order
present=$(nm --defined-only "$bin" | awk '{print $3}' | sort -u | comm -12 - <(sort -u "$order") | wc -l)
printf '%-44s %s\n' "hot-functions.order: named / in the binary" "$(wc -l < "$order") / $present"
printf '%-44s %s\n' "shared libraries needed" "$(ldd "$work/vaktpost" | wc -l)"
printf '%-44s %s\n' "links ICU (libicu*)" "$(ldd "$work/vaktpost" | grep -c libicu || true)"
printf '%-44s %s\n' "max RSS: vaktpost version" "$(rss "$work/vaktpost" version) KiB"
printf '%-44s %s\n' "max RSS: vaktpost config check (example)" "$(rss "$work/vaktpost" config check --no-files --config deploy/vaktpost.example.toml) KiB"
printf '%-44s %s\n' "max RSS: vaktpost replay (Besto)" "$(rss "$work/vaktpost" replay --config Tests/Fixtures/scenarios/home.toml --scenario Tests/Fixtures/scenarios/besto-alarm.jsonl) KiB"
idle=${IDLE:-20}
mkdir -p "$work/state"
hub=hub-bench platform=""
if [ "${PLATFORM:-0}" = 1 ]; then
    # The reference receiver with a dev PKI, acknowledging at once, as the Python benchmarks
    # start it; the hub is its hub-0001.
    swift build -c release --product vaktpost-receiver >/dev/null
    python3 Benchmarks/bench_platform.py receiver "$(dirname "$bin")" "$work" > "$work/platform"
    read -r receiver _ < "$work/platform"
    trap 'kill $receiver 2>/dev/null; rm -rf "$work"' EXIT
    hub=hub-0001
    platform=$(tail -n +2 "$work/platform")
fi
{
    printf '[hub]\nid = "%s"\ntimezone = "Europe/Oslo"\n' "$hub"
    printf '%s\n' "$platform"
    for i in $(seq 1 20); do printf '[[sensors]]\nid = "s%d"\nrole = "door"\nroom = "hallway"\ntransport = "ble"\naddress = "3C:2E:F5:00:00:%02X"\nfield = "window"\nsupervision = "2h"\n' "$i" "$i"; done
    printf '[outbox]\npath = "%s/state/outbox.sqlite"\n[ble]\nreplay = "%s/Tests/Fixtures/ble/night-monitor.btsnoop"\n' "$work" "$PWD"
} > "$work/idle.toml"
# The unit's Environment= lines (GnuTLS's constructor, which the agent never needs).
mapfile -t unit_env < <(sed -n 's/^Environment=//p' deploy/vaktpost.service)
env "${unit_env[@]}" "$work/vaktpost" run --config "$work/idle.toml" --socket "$work/ctl.sock" --audit-log "$work/audit.log" >/dev/null 2>&1 &
pid=$!
window=$(( idle > 120 ? 60 : idle / 2 ))
sleep $(( idle - window ))
# Clearing the referenced bits starts the working-set window; the writer must own the process.
# smaps also counts a page as referenced by the page's own flag, which other processes using the
# same libraries can set: the working set is only the agent's own on an otherwise quiet machine.
if echo 1 > /proc/$pid/clear_refs 2>/dev/null; then cleared=yes; else cleared=no; fi
sleep "$window"
kib() { awk -v k="$1" '$1 == k":" {print $2}' "$2"; }
printf '%-44s %s\n' "daemon, 20 sensors${platform:+, platform}, after ${idle} s: VmRSS" "$(kib VmRSS /proc/$pid/status) KiB"
printf '%-44s %s\n' "daemon: PSS" "$(kib Pss /proc/$pid/smaps_rollup) KiB"
printf '%-44s %s\n' "daemon: anonymous memory (RssAnon)" "$(kib RssAnon /proc/$pid/status) KiB"
if [ $cleared = yes ]; then
    printf '%-44s %s\n' "daemon: working set, last ${window} s" "$(kib Referenced /proc/$pid/smaps_rollup) KiB"
fi
printf '%-44s %s\n' "daemon: CPU over those seconds" "$(awk '{print ($14+$15)/100 " s"}' /proc/$pid/stat)"
# Resident and referenced KiB by mapping; libcurl's group is everything Debian's libcurl drags in.
awk -v bin="$work/vaktpost" '
    function group(path) {
        if (path == bin) return "the binary (its code, static Swift runtime and stdlib)"
        if (path ~ /\/(libc|libm|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so/) return "libc, libm, libstdc++, libgcc_s, the loader"
        if (path ~ /\/lib(crypto|ssl)\.so/) return "OpenSSL (libcrypto, libssl)"
        if (path ~ /\/libsqlite3\.so/) return "SQLite"
        if (path ~ /\/libudev\.so/) return "libudev"
        if (path ~ /outbox\.sqlite-shm$/) return "the outbox WAL index (-shm)"
        if (path ~ /^\//) return "libcurl and the libraries it was built with"
        return "anonymous mappings: heap, stacks"
    }
    /^[0-9a-f]+-[0-9a-f]+ / { g = group($6); next }
    $1 == "Rss:" { rss[g] += $2 }
    $1 == "Referenced:" { ref[g] += $2 }
    END { for (g in rss) printf "  %6d KiB resident, %5d touched: %s\n", rss[g], ref[g], g }
' /proc/$pid/smaps | sort -rn
kill -TERM $pid; wait $pid || true
echo "(targets for the daemon, issue 9: <= 18 MB stripped, <= 12 MB idle RSS after 10 minutes: IDLE=600)"
