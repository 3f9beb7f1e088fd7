#!/bin/bash
# The flagship example (`make demo`): compile a small gated language model,
# give it deterministic random weights, and run it through the reference
# interpreter twice — all 32 tokens in one call (prefill) and one token per
# call (decode) — to show that both give the same logits.
set -euo pipefail
GATTNC=${1:-build/gattnc}
cd "$(dirname "$0")/.."
OUT=out/demo
mkdir -p $OUT
MODEL=examples/hybrid.gat
echo "== $MODEL: graph IR (first lines)"
$GATTNC $MODEL --dump-ir > $OUT/hybrid.ir
head -n 20 $OUT/hybrid.ir
echo "... ($(wc -l < $OUT/hybrid.ir) lines in $OUT/hybrid.ir)"
echo "== random weights (gattnc init --seed 1)"
$GATTNC init $MODEL -o $OUT/weights.safetensors --seed 1
ls -l $OUT/weights.safetensors
python3 examples/make_tokens.py $OUT/tokens.safetensors tokens 32 256 7
echo "== prefill: 32 tokens in one call"
$GATTNC run $MODEL --interp --weights $OUT/weights.safetensors --inputs $OUT/tokens.safetensors -o $OUT/prefill.safetensors
echo "== decode: 32 calls of one token"
$GATTNC run $MODEL --interp --weights $OUT/weights.safetensors --inputs $OUT/tokens.safetensors -o $OUT/decode.safetensors --step 1
python3 examples/compare.py $OUT/prefill.safetensors $OUT/decode.safetensors
# The trained demo (examples/fortune): a 2-layer GLA byte-level model trained
# on Debian's fortunes; `make build` compiled fortune.gat to C and linked it
# into fortune_generate, which prefills the prompt and then decodes one byte
# per call (greedy, or sampled with a seeded generator). Plain greedy decoding
# of a model this small loops ("the start of the start of ..."), so the
# program's default is a no-repeat guard: never a byte that would repeat a
# 7-byte sequence already in the text (--no-repeat 7; 0 turns it off).
FORTUNE=$(dirname "$GATTNC")/examples/fortune/fortune_generate
[ -x "$FORTUNE" ] || cmake --build "$(dirname "$GATTNC")" --target fortune_generate
echo "== trained model (examples/fortune): plain greedy (--no-repeat 0), 60 bytes: it loops"
"$FORTUNE" --tokens 60 --no-repeat 0 "The meaning of life is"
echo "== trained model: greedy with the no-repeat guard (--no-repeat 7, the default), 300 bytes"
"$FORTUNE" --tokens 300 --no-repeat 7 "The meaning of life is"
echo "== trained model: sampled, temperature 0.6, seed 3, 300 bytes (same guard)"
"$FORTUNE" --tokens 300 --temp 0.6 --seed 3 "The meaning of life is"
