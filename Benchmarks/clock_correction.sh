#!/usr/bin/env bash
# The clock correction over a backlog: a hub without a battery-backed clock that boots without
# network stamps its events unsynchronised until NTP answers; then every queued event of the boot
# is re-stamped (PlatformLink.correctClock, Outbox.rewriteQueued). The pass goes in steps of 256
# events, the outbox free between steps, so an alarm raised meanwhile waits for one step, not the
# pass. Per backlog size, the median of RUNS runs: the whole pass, the longest step (the longest
# the outbox is held), how long an alarm appended from another thread 20 ms into the pass waited,
# and the probe's peak RSS (the backlog was made by the same process).
#
#   Benchmarks/clock_correction.sh [RUNS] [EVENTS...]     defaults: 5 runs; 10000 40000 100000
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
sizes=("${@:-10000 40000 100000}")
read -r -a sizes <<<"${sizes[*]}"
. Benchmarks/probe_setup.sh

printf '%-9s %10s %12s %16s %14s %14s\n' "events" "rewritten" "pass (s)" "longest step (ms)" "alarm wait (ms)" "peak RSS (MiB)"
for n in "${sizes[@]}"; do
    pass=() step=() wait=() rss=() rewritten=0
    for _ in $(seq "$runs"); do
        rm -f "$work"/outbox.sqlite*
        out=$("$probe" restamp "$work/outbox.sqlite" "$n")
        grep -q '^error' <<<"$out" && { echo "$out" >&2; exit 1; }
        rewritten=$(field rewritten <<<"$out")
        pass+=("$(field seconds <<<"$out")")
        step+=("$(awk -v s="$(field longest_step <<<"$out")" 'BEGIN {printf "%.1f", s * 1000}')")
        wait+=("$(awk -v s="$(field alarm_wait <<<"$out")" 'BEGIN {printf "%.1f", s * 1000}')")
        rss+=("$(awk -v k="$(field maxrss_kib <<<"$out")" 'BEGIN {printf "%.1f", k / 1024}')")
    done
    printf '%-9s %10s %12.2f %16s %14s %14s\n' "$n" "$rewritten" \
        "$(printf '%s\n' "${pass[@]}" | median)" "$(printf '%s\n' "${step[@]}" | median)" \
        "$(printf '%s\n' "${wait[@]}" | median)" "$(printf '%s\n' "${rss[@]}" | median)"
done
