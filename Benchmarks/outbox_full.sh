#!/usr/bin/env bash
# Appending past the outbox's capacity: a long outage has filled the outbox (MAX_MIB, `[outbox]
# max_bytes`) with events the capacity policy may not evict (technical events of a sensor that
# keeps going silent), and events keep coming, one append each as the daemon commits them, every
# tenth an alarm. The policy runs its scans when the outbox has grown 1 % past where it could
# last get to, not at every append. Per size, the median over RUNS runs of: the median append,
# the 99th percentile, the median alarm append (synced), and the outbox's depth.
#
#   Benchmarks/outbox_full.sh [RUNS] [MAX_MIB...]      defaults: 3 runs; 8 24 64
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
sizes=("${@:-8 24 64}")
read -r -a sizes <<<"${sizes[*]}"
. Benchmarks/probe_setup.sh

printf '%-9s %9s %16s %16s %18s\n' "max MiB" "depth" "append p50 (ms)" "append p99 (ms)" "alarm append (ms)"
for mib in "${sizes[@]}"; do
    p50=() p99=() alarm=() depth=0
    for _ in $(seq "$runs"); do
        rm -f "$work"/outbox.sqlite*
        out=$("$probe" full "$work/outbox.sqlite" "$mib" 500)
        grep -q '^error' <<<"$out" && { echo "$out" >&2; exit 1; }
        depth=$(field depth <<<"$out")
        p50+=("$(field median_ms <<<"$out")")
        p99+=("$(field p99_ms <<<"$out")")
        alarm+=("$(field alarm_median_ms <<<"$out")")
    done
    printf '%-9s %9s %16.2f %16.2f %18.2f\n' "$mib" "$depth" \
        "$(printf '%s\n' "${p50[@]}" | median)" "$(printf '%s\n' "${p99[@]}" | median)" "$(printf '%s\n' "${alarm[@]}" | median)"
done
