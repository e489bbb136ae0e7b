#!/usr/bin/env bash
# Outbox ingest: events stored per second, and fsyncs per append (group commit), for appends of
# 1, 10, 100 and 1000 events. Every tenth event is an alarm (synchronous=FULL for those appends).
# Prints the median of RUNS runs per size; the machine is noisy, so medians only.
#
#   Benchmarks/outbox_ingest.sh [EVENTS] [RUNS]        defaults: 100000 events, 5 runs
#
# Needs strace (apt-get install strace) to count fsync/fdatasync calls.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
runs=${2:-5}
command -v strace >/dev/null || { echo "strace is missing: apt-get install -y strace" >&2; exit 1; }
swift build -c release --product outbox-probe >/dev/null
probe=$(swift build -c release --show-bin-path)/outbox-probe
work=$(mktemp -d "${TMPDIR:-/tmp}/vaktpost-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# fsyncs of opening the database and the closing checkpoint, measured with no events at all.
rm -f "$work"/outbox.sqlite*
strace -f -c -e trace=fsync,fdatasync -o "$work/strace.txt" "$probe" ingest "$work/outbox.sqlite" 0 1 >/dev/null
overhead=$(awk '/fsync|fdatasync/ {s += $4} END {print s+0}' "$work/strace.txt")

printf '%-8s %10s %14s %14s %16s\n' "batch" "events" "events/s" "appends" "fsyncs/append"
for batch in 1 10 100 1000; do
    n=$events
    # One event per append is fsync-bound; a tenth of the events keeps the run short.
    [ "$batch" -eq 1 ] && n=$((events / 10))
    rates=()
    for _ in $(seq "$runs"); do
        rm -f "$work"/outbox.sqlite*
        out=$("$probe" ingest "$work/outbox.sqlite" "$n" "$batch")
        rates+=("$(sed -E 's/.*events_per_second=([0-9]+).*/\1/' <<<"$out")")
    done
    # strace stops the process at every syscall, so it gets a run of its own, not timed.
    rm -f "$work"/outbox.sqlite*
    out=$(strace -f -c -e trace=fsync,fdatasync -o "$work/strace.txt" "$probe" ingest "$work/outbox.sqlite" "$n" "$batch")
    appends=$(sed -E 's/.*appends=([0-9]+).*/\1/' <<<"$out")
    calls=$(awk '/fsync|fdatasync/ {s += $4} END {print s+0}' "$work/strace.txt")
    syncs=("$(awk -v c="$calls" -v o="$overhead" -v a="$appends" 'BEGIN {printf "%.3f", (c - o) / a}')")
    printf '%-8s %10s %14s %14s %16s\n' "$batch" "$n" "$(printf '%s\n' "${rates[@]}" | median)" "$((n / batch))" "$(printf '%s\n' "${syncs[@]}" | median)"
done
echo "(fsyncs/append: every fsync of the run minus the $overhead of opening the database and the closing idle checkpoint."
echo " Appends with an alarm-lane event sync once (synchronous=FULL); bulk-only appends do not sync."
echo " Targets: >= 20000 events/s batched, <= 1 fsync per append.)"
