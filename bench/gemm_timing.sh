#!/bin/sh
# gemm_timing.sh OLD_GATTNC NEW_GATTNC [reps] — times the GEMM micro-kernel
# text emitted by two gattnc builds against each other (bench/gemm_timing.c).
set -e
here=$(cd "$(dirname "$0")" && pwd)
old=$1; new=$2; reps=${3:-9}
d=$(mktemp -d)
printf 'model tiny {\n  input x : f32[T, 64]\n  output y : f32[T, 64]\n  y = linear(x, 64)\n}\n' > "$d/tiny.gat"
for v in old new; do
  eval g=\$$v
  "$g" "$d/tiny.gat" -o "$d/$v.c"
  sed -n '/---- GEMM micro-kernel/,/end of the GEMM micro-kernel/p' "$d/$v.c" > "$d/${v}_k.inc"
  ${CC:-cc} -std=c11 -O3 -march=native -I"$here/../runtime" -DKFILE="\"$d/${v}_k.inc\"" -DPFX=${v}_ -c "$here/gemm_timing_wrap.c" -o "$d/$v.o"
done
${CC:-cc} -std=c11 -O3 -march=native -c "$here/gemm_timing.c" -o "$d/h.o"
${CC:-cc} "$d/h.o" "$d/old.o" "$d/new.o" -o "$d/gemm_timing" -lm
"$d/gemm_timing" "$reps" 1
rm -rf "$d"
