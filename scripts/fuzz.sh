#!/usr/bin/env bash
# Runs every cargo-fuzz (libFuzzer) target in fuzz/ for a given time and prints a summary table.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; TARGETs default to all of `cargo fuzz list`. Each target
# starts from its committed seeds (fuzz/corpus/<target>) and from the inputs in
# fuzz/regressions/<target> (inputs that once crashed), and grows a scratch corpus in
# fuzz/work/corpus/<target>, so the committed seeds never change. Findings are written to
# fuzz/artifacts/<target>/ and logs to fuzz/work/logs/<target>.log.
#
# It needs only the stable toolchain and a C++ compiler (libFuzzer is C++): it installs
# cargo-fuzz if missing and builds without a sanitizer, which stable Rust supports; `common`
# forbids unsafe code, so what the fuzzer looks for is panics (including integer overflow, as
# the targets are built with debug assertions), failed round trips, hangs and memory blow-ups.
#
# Environment:
#   FT_FUZZ_SANITIZER=address  build with AddressSanitizer instead; on stable this sets
#                              RUSTC_BOOTSTRAP=1, because -Zsanitizer is a nightly flag
#   FT_FUZZ_KEEP_GOING=1       do not stop a target at its first crash (libFuzzer -fork=1
#                              -ignore_crashes=1), to count every crash a known bug causes
#   CARGO_TARGET_DIR           where to build (default fuzz/target)
#
# Exit status: 0 nothing found, 1 a target crashed, hung or ran out of memory, 2 bad usage or
# a setup failure.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

secs=${1:-60}
case $secs in
    -h | --help) usage ;;
    '' | *[!0-9]* | 0) echo "fuzz.sh: bad SECONDS_PER_TARGET ${secs@Q}, expected a positive number" >&2 && exit 2 ;;
esac
shift $(($# > 0 ? 1 : 0))

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/fuzz/target}

sanitizer=${FT_FUZZ_SANITIZER:-none}
case $sanitizer in
    none) ;;
    address) export RUSTC_BOOTSTRAP=1 ;;
    *) echo "fuzz.sh: bad FT_FUZZ_SANITIZER ${sanitizer@Q}, expected none or address" >&2 && exit 2 ;;
esac

if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null && ! command -v clang++ >/dev/null; then
    echo "fuzz.sh: no C++ compiler found, libFuzzer needs one (e.g. apt-get install g++)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || { echo "fuzz.sh: cannot install cargo-fuzz" >&2 && exit 2; }
    # cargo installs into $CARGO_INSTALL_ROOT or $CARGO_HOME, which need not be on PATH.
    export PATH="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin:$PATH"
fi

all_targets=$(cargo fuzz list)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets <<<"$all_targets"
fi
for t in "${targets[@]}"; do
    grep -qx -- "$t" <<<"$all_targets" || {
        echo "fuzz.sh: unknown target ${t@Q}, expected one of: $(tr "\n" " " <<<"$all_targets")" >&2
        exit 2
    }
done

work=$root/fuzz/work
mkdir -p "$work/logs"
echo "== building the fuzz targets (sanitizer: $sanitizer, target dir: $CARGO_TARGET_DIR)"
cargo fuzz build --sanitizer "$sanitizer" >"$work/logs/build.log" 2>&1 || {
    cat "$work/logs/build.log" >&2
    echo "fuzz.sh: the fuzz targets do not build" >&2
    exit 2
}
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$CARGO_TARGET_DIR/$host/release
extra=()
if [ "${FT_FUZZ_KEEP_GOING:-}" = 1 ]; then
    extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi

rows=()
failed=0
for t in "${targets[@]}"; do
    log=$work/logs/$t.log
    artifacts=$root/fuzz/artifacts/$t
    mkdir -p "$work/corpus/$t" "$artifacts"
    stamp=$work/.start-$t
    : >"$stamp"
    corpora=("$work/corpus/$t" "fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && corpora+=("fuzz/regressions/$t")
    echo "== $t: fuzzing for ${secs}s"
    status=0
    # The outer timeout is only a safety net; libFuzzer stops itself after -max_total_time.
    timeout --kill-after=10 $((secs * 2 + 120)) \
        cargo fuzz run --sanitizer "$sanitizer" "$t" "${corpora[@]}" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || status=$?

    new=$(find "$artifacts" -type f -newer "$stamp" | sort)
    findings=$(grep -c . <<<"$new" || true)
    rm -f "$stamp"
    # Figures: plain runs end with stat:: lines and a "#N DONE cov: .. ft: .. corp: N/.." line;
    # -fork runs print "#N: cov: .. ft: .. corp: N exec/s: .. time: Ns".
    last=$(grep -E '^#[0-9]+:?[[:space:]]' "$log" | grep -E 'cov: ' | tail -n 1 || true)
    runs=$(grep -oE '^stat::number_of_executed_units:[[:space:]]+[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    rate=$(grep -oE '^stat::average_exec_per_sec:[[:space:]]+[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    if [ -z "$runs" ]; then
        runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
        elapsed=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
        rate=$(( ${runs:-0} / ( ${elapsed:-$secs} > 0 ? ${elapsed:-$secs} : 1 ) ))
    fi
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
    result=ok
    if [ "$findings" -gt 0 ] || [ "$status" -ne 0 ]; then
        result=FOUND
        failed=1
        [ "$findings" -gt 0 ] || result="FAILED($status)"
    fi
    rows+=("$t|$result|${runs:-?}|${rate:-?}|${cov:-?}|${ft:-?}|${corp:-?}|$findings")
    if [ "$result" != ok ]; then
        # Replay the first few findings to show where each one fails.
        for a in $(head -n 3 <<<"$new"); do
            echo "     artifact: $a"
            out=$(timeout 30 "$bin_dir/$t" "$a" 2>&1 || true)
            { grep -m 1 -A 1 'panicked at' <<<"$out" || grep -m 1 '^SUMMARY' <<<"$out" || true; } | sed 's/^/       /'
        done
        [ "$findings" -gt 0 ] || grep -m 3 -E 'panicked at|^SUMMARY|ERROR' "$log" | sed 's/^/     /' || true
        [ "$findings" -le 3 ] || echo "     ... and $((findings - 3)) more in $artifacts"
        echo "     log: $log"
    fi
done

echo
printf '%-10s %-10s %12s %8s %6s %8s %7s %9s\n' target result executions exec/s cov features corpus findings
for row in "${rows[@]}"; do
    IFS='|' read -r t result runs rate cov ft corp findings <<<"$row"
    printf '%-10s %-10s %12s %8s %6s %8s %7s %9s\n' "$t" "$result" "$runs" "$rate" "$cov" "$ft" "$corp" "$findings"
done
if [ "$failed" -ne 0 ]; then
    echo
    echo "fuzz.sh: findings above; reproduce one with: cargo fuzz run --sanitizer $sanitizer TARGET ARTIFACT"
    exit 1
fi
