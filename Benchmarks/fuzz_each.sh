#!/usr/bin/env bash
# libFuzzer over each parser on its own (FUZZ_PARSER pins it): RUNS executions each, two at a
# time, each bounded by MAX_SECONDS. Prints the runs, time and result per parser.
#
#   Benchmarks/fuzz_each.sh [RUNS] [MAX_SECONDS]       default 10000000 and 1200
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
max=${2:-1200}
swift build -c release --scratch-path .build-fuzz --product fuzz-parsers -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING >/dev/null || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/vaktpost-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
names=([0]="HCI + advertising data" [1]="btsnoop" [2]="BTHome (plain, encrypted)" [3]="config (TOML)" [4]="scenario files" [5]="JSON" [6]="ESP3 streams" [240]="platform replies + clock correction")
run() {
    local p=$1
    mkdir -p "$work/corpus-$p" && cp Tests/Fuzz/corpus/* "$work/corpus-$p/"
    ( cd "$work" && FUZZ_PARSER=$p "$OLDPWD/.build-fuzz/release/fuzz-parsers" -runs="$runs" -max_total_time="$max" -max_len=1024 \
        -print_final_stats=1 "corpus-$p" > "log-$p" 2>&1 )
    local rc=$?
    local done=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log-$p" | grep -o '[0-9]*$')
    local secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$work/log-$p" | grep -o 'in [0-9]*' | grep -o '[0-9]*')
    printf '%-40s %12s runs %6s s  %s\n' "${names[$p]}" "${done:-?}" "${secs:-?}" "$([ $rc -eq 0 ] && echo clean || echo "FAILED (see below)")"
    [ $rc -eq 0 ] || grep -m5 -E "ERROR|Fatal|crash" "$work/log-$p"
}
for pair in "0 1" "2 3" "4 5" "6 240"; do
    set -- $pair
    run "$1" > "$work/out-$1" & run "$2" > "$work/out-$2" & wait
    cat "$work/out-$1" "$work/out-$2"
done
