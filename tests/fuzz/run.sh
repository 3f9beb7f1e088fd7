#!/bin/bash
# run.sh — the fuzz smoke test of `make test`: builds the libFuzzer targets of
# tests/fuzz (a separate clang build tree configured with -DGAT_FUZZ=ON), then
# for each target replays its regressions (tests/fuzz/regress/TARGET/*) and
# fuzzes it for a fixed short time from its seed corpus. A crash, sanitizer
# report or oracle failure fails the target; the reproducer is kept under
# BUILD/fuzz-artifacts/TARGET/. Findings not fixed yet live in
# regress/TARGET/open/: they are replayed and reported, but do not fail the run.
#
# usage: tests/fuzz/run.sh [SECONDS_PER_TARGET (default 20; 0 = replay only)] [TARGET...]
#        TARGET: gat ir safetensors bind forward (the default), or lower (front end +
#        passes + loop IR; builds the instrumented code generator, so not in make test)
# env:   FUZZ_BUILD (default build-fuzz), JOBS (default 2), CC (default clang-14 or clang)
#        (a new FUZZ_BUILD uses build/gattnc, when there is one, to compile fuzz_lm.gat)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/fuzz
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
SECS=${1:-20}
shift $(( $# > 0 ? 1 : 0 ))
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(gat ir safetensors bind forward)

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cc=${CC:-$(command -v clang-14 || command -v clang || true)}
  if [ -z "$cc" ]; then echo "fuzz: clang not found"; echo "fuzz: 0 passed, ${#TARGETS[@]} failed"; exit 1; fi
  # the normal build's gattnc (make test builds it first) compiles tests/fuzz/fuzz_lm.gat,
  # which spares an instrumented build of the code generator
  gattnc=""
  [ -x "$ROOT/build/gattnc" ] && gattnc="$ROOT/build/gattnc"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGAT_FUZZ=ON -DCMAKE_C_COMPILER="$cc" \
    -DGAT_FUZZ_GATTNC="$gattnc" >/dev/null || exit 1
fi
bins=()
for t in "${TARGETS[@]}"; do bins+=("fuzz_$t"); done
if ! cmake --build "$BUILD" -j"${JOBS:-2}" --target "${bins[@]}" >"$BUILD/fuzz-build.log" 2>&1; then
  tail -n 40 "$BUILD/fuzz-build.log"
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi

max_len() {
  case $1 in gat | lower) echo 4096 ;; forward) echo 256 ;; *) echo 16384 ;; esac
}
dict() {
  case $1 in gat | lower) echo "-dict=$HERE/gat.dict" ;; ir) echo "-dict=$HERE/ir.dict" ;;
    safetensors | bind) echo "-dict=$HERE/safetensors.dict" ;; esac
}

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
pass=0
fail=0
for t in "${TARGETS[@]}"; do
  bin=$BUILD/tests/fuzz/fuzz_$t
  art=$BUILD/fuzz-artifacts/$t
  work=$(mktemp -d)
  mkdir -p "$art" "$work/corpus"
  ok=1
  nreg=0
  for f in "$HERE/regress/$t"/*; do
    [ -f "$f" ] || continue
    nreg=$((nreg + 1))
    if ! "$bin" "$f" >"$work/replay.log" 2>&1; then
      echo "fuzz_$t: regression $(basename "$f") fails again:"
      grep -E "ERROR|SUMMARY|runtime error|fuzz_$t:" "$work/replay.log" | head -n 5
      ok=0
    fi
  done
  for f in "$HERE/regress/$t/open"/*; do
    [ -f "$f" ] || continue
    if "$bin" "$f" >/dev/null 2>&1; then
      echo "fuzz_$t: open finding $(basename "$f") no longer fails: move it to regress/$t/"
    else
      echo "fuzz_$t: open finding $(basename "$f") still fails (known, not counted)"
    fi
  done
  # new inputs go to a scratch corpus (first directory), never into the repository;
  # 0 seconds is one pass over the corpus (libFuzzer reads -max_total_time=0 as "no limit")
  limit="-max_total_time=$SECS"
  [ "$SECS" -eq 0 ] && limit="-runs=0"
  "$bin" -seed=1 "$limit" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    $(dict "$t") -print_final_stats=1 -artifact_prefix="$art/" "$work/corpus" "$HERE/corpus/$t" \
    >"$work/fuzz.log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "fuzz_$t: crash while fuzzing (exit $rc):"
    grep -E "ERROR|SUMMARY|runtime error|fuzz_$t:|Test unit written" "$work/fuzz.log" | head -n 8
    ok=0
  fi
  runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$work/fuzz.log" | grep -oE "[0-9]+$")
  cov=$(grep -oE "cov: [0-9]+ ft: [0-9]+" "$work/fuzz.log" | tail -n 1)
  if [ $ok -eq 1 ]; then
    pass=$((pass + 1))
    echo "fuzz_$t: ok (${SECS}s, ${runs:-?} runs, ${cov:-no coverage line}, $nreg regressions replayed)"
  else
    fail=$((fail + 1))
    echo "fuzz_$t: FAILED (log kept in $art/fuzz.log)"
    cp "$work/fuzz.log" "$art/fuzz.log"
  fi
  rm -rf "$work"
done
echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ]
