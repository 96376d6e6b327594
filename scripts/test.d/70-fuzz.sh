# Fuzzing: every cargo-fuzz target in fuzz/ runs for a bounded time (FUZZ_SECONDS each,
# default 20; the whole run is capped at FUZZ_BUDGET seconds, default 300). Inputs that once
# crashed a target live in fuzz/regressions/<target>/ and are replayed first. A crash fails
# the stage and prints the input (base64) so it can become a regression file.
# cargo-fuzz needs nightly-only rustc flags (sanitizers); this stable toolchain allows them
# with RUSTC_BOOTSTRAP=1 for this stage only.
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -eo pipefail
need_cargo_tool cargo-fuzz cargo-fuzz
export RUSTC_BOOTSTRAP=1

cd fuzz
targets=$(cargo fuzz list)
[ -n "$targets" ] || die "no fuzz targets in fuzz/"
n=$(echo "$targets" | wc -l)
secs=${FUZZ_SECONDS:-20}
budget=${FUZZ_BUDGET:-300}
[ $((secs * n)) -le "$budget" ] || secs=$((budget / n))
[ "$secs" -ge 5 ] || die "FUZZ_BUDGET=$budget too small for $n targets"
log "building $n fuzz targets (address sanitizer, release)"
cargo fuzz build -O

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in $targets; do
  corpus="$work/$t"; mkdir -p "$corpus"
  seeds=(); [ -d "seeds/$t" ] && seeds+=("seeds/$t")
  if [ -d "regressions/$t" ]; then
    log "fuzz $t: replaying regressions/$t"
    cargo fuzz run -O "$t" "regressions/$t" -- -runs=0 || { failed+=("$t(regression)"); continue; }
  fi
  log "fuzz $t: ${secs}s"
  if ! cargo fuzz run -O "$t" "$corpus" "${seeds[@]}" -- \
      -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
      >"$work/$t.log" 2>&1; then
    tail -40 "$work/$t.log" >&2
    for a in artifacts/"$t"/*; do
      [ -f "$a" ] || continue
      echo "crash input $a (base64): $(base64 -w0 "$a")" >&2
    done
    failed+=("$t")
  else
    grep -E '^(Done|stat::number_of_executed_units)' "$work/$t.log" | sed "s/^/  $t: /" >&2 || true
  fi
done
[ ${#failed[@]} -eq 0 ] || die "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/)"
echo "fuzz: $n targets, ${secs}s each, no crash"
