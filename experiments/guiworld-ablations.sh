#!/bin/bash
# GUIWorld ablations at tiny scale: one shared tokenizer, the default variant trained once and shared.
set -e
cd "$(dirname "$0")/.."
source .venv/bin/activate
A=reports/ablations
# 0. the datasets (512x384 so that guiworld-tiny's 256x192 frames keep a findable cursor), if missing
collect() {  # policy episodes seconds seed out
  [ -d "$5" ] || ncomp data collect-desktop --policy "$1" --episodes "$2" --seconds "$3" --seed "$4" --size 512x384 --out "$5"
}
collect random-fast 12 20 1 datasets/desktop-random-fast
collect random-slow 12 20 2 datasets/desktop-random-slow
collect scripted 12 30 3 datasets/desktop-scripted
collect scripted 4 20 4 datasets/desktop-eval
E="--eval-data datasets/desktop-eval --eval-split all --eval-episodes 4 --eval-frames 31"
# TOKENIZER=DIR reuses a trained tokenizer (e.g. RUN/tokenizer/model); otherwise the default run trains one
# (--train-tokenizer: ncomp train would otherwise reuse the bundled model's).
# 1. the shared default run (injection=internal, meta actions, Fourier coords, cursor reference) on scripted
#    data; its tokenizer (trained first, inside it) serves every variant
ncomp train --preset guiworld-tiny --data datasets/desktop-scripted --out $A/default --steps 500 threads=2 \
  $([ -n "$TOKENIZER" ] && echo "model.tokenizer.path=$TOKENIZER" || echo --train-tokenizer)
TOK=${TOKENIZER:-$PWD/$A/default/tokenizer/model}
for link in injection/runs/internal actions/runs/meta cursor/runs/mask-reference data/runs/scripted; do
  mkdir -p $A/$(dirname $link); ln -sfn $PWD/$A/default $A/$link
done
# 2. two streams of the other variants, one thread each
(ncomp experiment guiworld injection --data datasets/desktop-scripted --out $A/injection --steps 500 $E threads=1 model.tokenizer.path=$TOK \
 && ncomp experiment guiworld actions --data datasets/desktop-scripted --out $A/actions --steps 500 $E threads=1 model.tokenizer.path=$TOK) > logs/abl-A.log 2>&1 &
A_PID=$!
(ncomp experiment guiworld cursor --data datasets/desktop-scripted --out $A/cursor --steps 500 $E threads=1 model.tokenizer.path=$TOK \
 && ncomp experiment guiworld data --data random-slow=datasets/desktop-random-slow --data random-fast=datasets/desktop-random-fast --data scripted=datasets/desktop-scripted --out $A/data --steps 500 $E threads=1 model.tokenizer.path=$TOK) > logs/abl-B.log 2>&1 &
B_PID=$!
wait $A_PID  # a plain `wait` returns 0 whatever the streams returned; set -e sees these
wait $B_PID
# 3. seed noise: every table again at seed 1, beside seed 0 (the runs above, linked in as seed-0, are not
#    retrained); writes TABLE-seeds.md. The default configuration (internal injection, meta actions, cursor
#    reference, scripted data) is trained once at seed 1 and linked into the other tables.
for t in actions injection cursor data; do
  mkdir -p $A/seeds/$t/seed-1/runs
  ln -sfn $PWD/$A/$t $A/seeds/$t/seed-0
done
for link in injection/seed-1/runs/internal cursor/seed-1/runs/mask-reference data/seed-1/runs/scripted; do
  ln -sfn $PWD/$A/seeds/actions/seed-1/runs/meta $A/seeds/$link
done
for t in actions injection cursor; do
  ncomp experiment guiworld $t --seeds 0,1 --data datasets/desktop-scripted --out $A/seeds/$t --steps 500 $E threads=1 model.tokenizer.path=$TOK
done
ncomp experiment guiworld data --seeds 0,1 --data random-slow=datasets/desktop-random-slow --data random-fast=datasets/desktop-random-fast \
  --data scripted=datasets/desktop-scripted --out $A/seeds/data --steps 500 $E threads=1 model.tokenizer.path=$TOK
echo ALL DONE
