#!/usr/bin/env bash
# wardgate's nftables backend beside Aerleon's `aclgen`, on the same generated
# policies (wardgate_tests::scalegen, plain mix: N isolated zones with two
# IPv4 prefixes each, plus one IPv6 prefix with `v6`, and 5N allow rules of two
# TCP ports). Per size and tool: compile wall-clock time, CPU time and peak
# memory (/usr/bin/time -v), `nft -c -f` time (bounded by TIMEOUT), and, for wardgate, whether the
# loaded maps read back exactly as written. Results: one TSV line per run on
# stdout and in $OUT/results.tsv.
#
# Called by `cargo xtask bench nft` (which builds the binaries first); by hand:
#   WARDGATE=target/release/wardgate SCALEGEN=target/release/examples/scalegen \
#     bench/aerleon/run.sh [SIZE...]
# Environment: FAMILIES (default "v4 v6"), TIMEOUT seconds for each aclgen and
# nft run (default 600), VENV (default target/aerleon-venv), AERLEON (the
# version installed from PyPI, default 1.18.0), OUT (default target/bench/nft).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/bench/aerleon"
wardgate=${WARDGATE:-$root/target/release/wardgate}
scalegen=${SCALEGEN:-$root/target/release/examples/scalegen}
out=${OUT:-$root/target/bench/nft}
venv=${VENV:-$root/target/aerleon-venv}
timeout_s=${TIMEOUT:-600}
families=${FAMILIES:-v4 v6}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 1000 10000)

for tool in nft ip timeout /usr/bin/time python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: \`$tool\` is missing" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (nft in a scratch namespace)" >&2; exit 2; }
if [ ! -x "$venv/bin/aclgen" ]; then
    echo "run.sh: installing aerleon ${AERLEON:-1.18.0} from PyPI into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "aerleon==${AERLEON:-1.18.0}"
fi

ns="wg-bench-nft-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
mkdir -p "$out"
results="$out/results.tsv"
printf 'tool\tzones\trules\tfamily\tcompile_s\tcpu_s\tpeak_mb\tnft_check_s\tloaded\n' | tee "$results"

# "WALL_S CPU_S PEAK_MB" of a command (wall clock from `date`, CPU time and
# peak memory from /usr/bin/time -v), or "timeout - -" / "failed - -".
measure() {
    local log=$1 start end; shift
    start=$(date +%s.%N)
    if timeout "$timeout_s" /usr/bin/time -v "$@" >"$log.out" 2>"$log"; then
        end=$(date +%s.%N)
        awk -F': ' -v a="$start" -v b="$end" '
            /User time/ { cpu += $2 } /System time/ { cpu += $2 }
            /Maximum resident set size/ { mb = $2 / 1024 }
            END { printf "%.3f %.2f %.0f\n", b - a, cpu, mb }' "$log"
    elif [ $? -eq 124 ]; then echo "timeout - -"; else echo "failed - -"; fi
}

# Seconds of `nft -c -f FILE` in the namespace, or "timeout>Ns" / "failed".
check() {
    local start end
    start=$(date +%s.%N)
    if timeout "$timeout_s" ip netns exec "$ns" nft -c -f "$1" >/dev/null 2>"$1.check.err"; then
        end=$(date +%s.%N)
        awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f\n", b - a }'
    elif [ $? -eq 124 ]; then echo "timeout>${timeout_s}s"; else echo "failed"; fi
}

for size in "${sizes[@]}"; do
    rules=$((5 * size))
    for fam in $families; do
        dir="$out/$size-$fam"
        rm -rf "$dir"
        "$scalegen" "$size" "$rules" "$fam" "$dir"

        read -r secs cpu mb < <(measure "$dir/wardgate.time" "$wardgate" compile "$dir/policy.ward" --target nftables -o "$dir/wardgate.nft")
        chk=$(check "$dir/wardgate.nft")
        loaded=no
        if ip netns exec "$ns" nft -f "$dir/wardgate.nft" 2>"$dir/wardgate.load.err"; then
            ip netns exec "$ns" nft -j -n list table inet wardgate >"$dir/wardgate.back.json"
            if python3 "$here/readback.py" "$dir/wardgate.nft" <"$dir/wardgate.back.json" >"$dir/wardgate.exact"; then
                loaded="exact"
            else
                loaded="NOT-exact"
            fi
            ip netns exec "$ns" nft delete table inet wardgate
        fi
        printf 'wardgate\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$rules" "$fam" "$secs" "$cpu" "$mb" "$chk" "$loaded" | tee -a "$results"

        read -r secs cpu mb < <(cd "$dir" && measure "$dir/aclgen.time" "$venv/bin/aclgen" \
            --base_directory=policies --definitions_directory=def --output_directory=aclgen)
        chk="-"
        if [ -f "$dir/aclgen/policy.nft" ]; then chk=$(check "$dir/aclgen/policy.nft"); fi
        printf 'aclgen\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$rules" "$fam" "$secs" "$cpu" "$mb" "$chk" "-" | tee -a "$results"
    done
done
