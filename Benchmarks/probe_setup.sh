# Sourced (not run) by the outbox benchmarks: builds outbox-probe in release, gives a scratch
# directory removed on exit, and the helpers their tables use. VAKTPOST_BINDIR: another build's
# outbox-probe, as in bench_platform.py.
if [ -n "${VAKTPOST_BINDIR:-}" ]; then
    probe=$VAKTPOST_BINDIR/outbox-probe
else
    swift build -c release --product outbox-probe >/dev/null 2>&1 || swift build -c release --product outbox-probe
    probe=$(swift build -c release --show-bin-path 2>/dev/null)/outbox-probe
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/vaktpost-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# The number after NAME= in the probe's line on stdin.
field() { sed -nE "s/.*$1=([0-9.e-]+).*/\\1/p" | head -1; }
