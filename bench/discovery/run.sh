#!/bin/sh
# `cargo xtask bench suggest`: `wardgate suggest` on generated inputs
# (`compiler/examples/discover_gen.rs`): flows logs of 2,000,000 and
# 4,000,000 records and a 1 GB pcap, all over the same 20,000 flow keys on
# examples/hospital.ward. Prints wall time, records per second and peak
# memory (/usr/bin/time); results and method in bench/discovery.md.
set -eu
: "${WARDGATE:?path to a release wardgate}" "${GEN:?path to discover_gen}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/target/bench/discovery}
mkdir -p "$OUT"
POLICY=$ROOT/examples/hospital.ward
run() { # label, records, args...
    label=$1; records=$2; shift 2
    /usr/bin/time -f "%e %M" -o "$OUT/time" "$WARDGATE" suggest "$POLICY" --today 2026-01-10 --format json "$@" >"$OUT/$label.json" || true
    # time(1) says "Command exited with non-zero status 1" first when
    # something was flagged (suggest's exit 1): the figures are the last line.
    read -r secs kib <<EOF
$(tail -n 1 "$OUT/time")
EOF
    rate=$(awk -v r="$records" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", r / s; else print "-" }')
    echo "$label: $records records in $secs s ($rate records/s), peak memory $kib KiB"
}
for n in 2000000 4000000; do
    [ -s "$OUT/flows-$n.jsonl" ] || "$GEN" flows "$n" "$OUT/flows-$n.jsonl"
    run "flows-$n" "$n" --flows "$OUT/flows-$n.jsonl"
done
BYTES=${PCAP_BYTES:-1000000000}
[ -s "$OUT/capture.pcap" ] || "$GEN" pcap "$BYTES" "$OUT/capture.pcap"
size=$(stat -c %s "$OUT/capture.pcap")
packets=$(( size / 636 ))
run "pcap-$size-bytes" "$packets" --pcap "$OUT/capture.pcap"
[ -s "$OUT/small.pcap" ] || "$GEN" pcap $((BYTES / 10)) "$OUT/small.pcap"
run "pcap-tenth" "$((packets / 10))" --pcap "$OUT/small.pcap"
echo "(pcap record counts are packets, estimated from the file size)"
