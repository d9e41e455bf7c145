#!/bin/bash
# The CLIGen tables at tiny scale (a few CPU hours on 2 cores): caption tiers, step curves over three
# seeds, the arithmetic probe, determinism. Results land in reports/cligen/, tables are copied to
# docs/results/cligen/. `experiments/cligen-tables.sh --quick` runs every table on data recorded on the
# spot in a few minutes (a pipeline check, what CI runs).
set -e
cd "$(dirname "$0")/.."
source .venv/bin/activate
if [ "$1" = --quick ]; then
  OUT=${OUT:-reports/cligen-quick}
  for t in tiers steps arithmetic determinism; do ncomp experiment cligen $t --quick --out $OUT; done
  exit 0
fi
OUT=reports/cligen
[ -d datasets/clean ] || make datasets
# the bundled model's tokenizer serves every run, so runs differ only in what the table varies
TOK=${TOKENIZER:-runs/cligen-tiny-clean/tokenizer/model}
[ -d "$TOK" ] || ncomp train --preset cell-ae --data datasets/clean --out runs/tok-clean --steps 3000 threads=1
[ -d "$TOK" ] || TOK=runs/tok-clean/model
COMMON="threads=1 val_every=250 model.tokenizer.path=$PWD/$TOK"
# two streams, one core each: tiers (semantic, regular, detailed) and the seeds of the default recipe
(ncomp experiment cligen steps --data datasets/clean --out $OUT/steps --steps 1000 --seeds 0,1,2 $COMMON) > logs/cligen-steps.log 2>&1 &
S=$!
mkdir -p $OUT/tiers/runs && ln -sfn $PWD/$OUT/steps/runs/seed0 $OUT/tiers/runs/mixed  # mixed, seed 0 = the steps table's seed 0
(ncomp experiment cligen tiers --data datasets/clean --out $OUT/tiers --steps 1000 $COMMON) > logs/cligen-tiers.log 2>&1 &
T=$!
wait $S
wait $T
ncomp experiment cligen arithmetic --model models/cligen-tiny --n 20 --out $OUT/arithmetic
ncomp experiment cligen determinism --out $OUT/determinism
mkdir -p docs/results/cligen
for t in tiers steps arithmetic determinism; do cp $OUT/$t/$t.md $OUT/$t/$t.json docs/results/cligen/; done
cp $OUT/steps/steps.png docs/results/cligen/
echo ALL DONE
