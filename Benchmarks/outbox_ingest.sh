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
. Benchmarks/probe_setup.sh

# fsyncs per thread: strace -ff writes one file per thread; the process's own (lowest id) is
# the appending thread, the other holding fsyncs is the checkpointer beside it.
count_fsyncs() {  # DB EVENTS BATCH [PAUSE_US] -> "append_thread_fsyncs checkpointer_fsyncs appends"
    rm -rf "$work/st" && mkdir "$work/st" && rm -f "$work"/outbox.sqlite*
    local out
    out=$(strace -ff -e trace=fsync,fdatasync -o "$work/st/t" "$probe" ingest "$work/outbox.sqlite" "$@")
    local main=$(ls "$work/st" | sort -t. -k2 -n | head -1)
    local mine=$(grep -c sync "$work/st/$main" || true)
    local theirs=$(cat "$work"/st/t.* | grep -c sync || true)
    echo "$mine $((theirs - mine)) $(sed -E 's/.*appends=([0-9]+).*/\1/' <<<"$out")"
}
# fsyncs of opening the database, measured with no events at all.
read -r overhead _ _ < <(count_fsyncs 0 1)

printf '%-8s %10s %12s %10s %22s %14s\n' "batch" "events" "events/s" "appends" "fsyncs/append (own)" "checkpointer"
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
    read -r own beside appends < <(count_fsyncs "$n" "$batch")
    printf '%-8s %10s %12s %10s %22s %14s\n' "$batch" "$n" "$(printf '%s\n' "${rates[@]}" | median)" "$appends" \
        "$(awk -v c="$own" -v o="$overhead" -v a="$appends" 'BEGIN {printf "%.3f", (c - o) / a}')" "$beside"
done
# Paced like the daemon: appends of 10 events 10 ms apart (1,000 events/s, far more than a home's
# sensors): the checkpointer finds its pauses and takes the checkpoints off the appends; what is
# left over 1.000 is the WAL header's fsync in the first commit after the WAL starts over.
read -r own beside appends < <(count_fsyncs 20000 10 10000)
printf '%-8s %10s %12s %10s %22s %14s\n' "10 paced" 20000 "(1000)" "$appends" \
    "$(awk -v c="$own" -v o="$overhead" -v a="$appends" 'BEGIN {printf "%.3f", (c - o) / a}')" "$beside"
echo "(fsyncs/append (own): the appending thread's fsyncs minus the $overhead of opening the database;"
echo " checkpointer: the fsyncs of the checkpointer thread beside it (the daemon's OutboxCheckpointer)."
echo " Appends with an alarm-lane event sync once (synchronous=FULL); bulk-only appends do not sync."
echo " In a tight loop the commits never pause, so checkpoints cannot complete beside them and the"
echo " commits' own 4 MB backstop checkpoints. Paced, the rest over 1.000 is the WAL header's fsync"
echo " after each start-over. Targets: >= 20000 events/s batched, <= 1 fsync per batch.)"
