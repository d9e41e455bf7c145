#!/bin/bash
# The GPU path run for real (issue 19): one script that, on a fresh CUDA machine with this checkout,
# sets up a CUDA PyTorch in its own venv and writes one JSON line per figure (default
# reports/gpu-check.jsonl), each beside its model FLOPs utilisation from `ncomp bench flops`:
#
#   cligen_small_train        ncomp bench train   --preset cligen-small (ours, bf16): steps/s, samples/s, peak memory
#   wan_1.3b_train            ncomp bench train   --preset wan2.1-i2v-1.3b: random transformer, bf16, checkpointing
#   cligen_small_sample       ncomp bench sample  --preset cligen-small: seconds per clip
#   wan_1.3b_sample           ncomp bench sample  --preset wan2.1-i2v-1.3b: seconds per clip (transformer only)
#   guiworld_tiny_rollout     ncomp bench rollout --model models/guiworld-tiny: frames/s
#   guiworld_512x384_rollout  ncomp bench rollout --preset guiworld-small (512x384): frames/s
#   ddp_checkpoint_resume     torchrun (1 process): train, checkpoint, resume; against a straight run
#
# Usage: experiments/gpu-check.sh [--out FILE] [--dry-run] [--peak-tflops N] [--venv DIR] [--python PY]
#                                 [--torch-index URL] [--find-links DIR] [--budget SECONDS]
#   --dry-run   the same steps on the CPU at tiny sizes, in about a minute: no venv is made, the
#               project's .venv (else the python on PATH) runs them; lines say "dry_run": true.
#   --python    use this interpreter as it is (it must already have a CUDA torch and the dependencies).
#   --torch-index  pip index for torch when the default index gives no CUDA build on this machine
#               (e.g. https://download.pytorch.org/whl/cu128).
#   --budget    seconds for the whole script (default 480; 1800 for --dry-run, which a loaded CPU runs
#               slowly): a step that would start later is skipped and its figure written with the
#               reason, so a lent accelerator's time is never overrun.
# Exit status: 0 when every figure has a value, 1 when some are missing (the file still has them all).
# Raw outputs and logs of every step stay in OUT's folder under <name>-work/.
set -uo pipefail
CALLER=$PWD
cd "$(dirname "$0")/.."
REPO=$PWD
here() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER/$1" ;; esac; }  # a path given by the caller

OUT=$REPO/reports/gpu-check.jsonl
DRY=0
PEAK_TFLOPS=989  # H200 (= H100 SXM compute) bf16 dense, no sparsity
VENV=.venv-gpu
PY=""
TORCH_SPEC="torch==2.13.0"  # the version pyproject pins; on Linux x86_64 the default index's wheel is the CUDA build
TORCH_INDEX=""
FIND_LINKS=""
BUDGET=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$(here "$2"); shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --peak-tflops) PEAK_TFLOPS=$2; shift 2 ;;
    --venv) VENV=$(here "$2"); shift 2 ;;
    --python) PY=$(command -v "$2" >/dev/null && [[ "$2" != */* ]] && command -v "$2" || here "$2"); shift 2 ;;
    --torch-index) TORCH_INDEX=$2; shift 2 ;;
    --find-links) FIND_LINKS=$(here "$2"); shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

[ -n "$BUDGET" ] || BUDGET=$([ "$DRY" = 1 ] && echo 1800 || echo 480)
# per-step time limits are sized for the GPU; a CPU shared with a test suite gets three times as long
SLACK=$([ "$DRY" = 1 ] && echo 3 || echo 1)

log() { echo "gpu-check [$((SECONDS))s] $*" >&2; }
die() { echo "gpu-check: $*" >&2; exit 2; }

WORK=${OUT%.jsonl}-work
rm -rf "$WORK" && mkdir -p "$WORK" || die "cannot make $WORK"

# The checkout's code runs whatever the venv holds (see setup_cuda: the package is installed without
# dependencies, and an install that fails leaves this path to it).
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
# Sampling and rollouts enforce deterministic algorithms by default (as `ncomp sample` does). PyTorch
# builds have refused cuBLAS calls in that mode unless cuBLAS has a fixed workspace, set before CUDA
# starts; set it, so that the check does not depend on the build (it costs nothing where not needed).
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

cuda_ok() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }

# A CUDA torch in a venv of its own, never touching .venv or the Makefile's CPU pins:
# 1. torch alone first (the CUDA wheel), unless the interpreter the venv is made from already has a
#    CUDA torch (then the venv sees it: --system-site-packages, nothing downloaded);
# 2. the project's other pinned dependencies that are not already met, under a constraint holding
#    torch at the build now installed, so no resolver step can swap it for another (pyproject's
#    torch==2.13.0 is also met by 2.13.0+cpu);
# 3. the package itself with --no-deps: its requirements are never resolved again.
# Every step is skipped when already done, so a second run (or an offline machine whose python has it
# all) installs nothing; pip gets short timeouts so an offline machine fails in seconds, not minutes.
setup_cuda() {
  if [ -n "$PY" ]; then
    cuda_ok "$PY" || die "--python $PY: its torch sees no CUDA device"
    return
  fi
  local base=${PYTHON3:-python3}
  if [ ! -x "$VENV/bin/python" ]; then
    if cuda_ok "$base"; then
      log "$base already has a CUDA torch: $VENV sees it (--system-site-packages)"
      "$base" -m venv --system-site-packages "$VENV"
    else
      "$base" -m venv "$VENV"
    fi || die "cannot make $VENV with $base -m venv (Debian: apt-get install python3-venv; or pass --python)"
  fi
  PY=$VENV/bin/python
  local pip=("$PY" -m pip install -q --timeout 30 --retries 1 ${FIND_LINKS:+--find-links "$FIND_LINKS"})
  if ! cuda_ok "$PY"; then
    log "installing $TORCH_SPEC (the CUDA build) into $VENV"
    "${pip[@]}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH_SPEC" || die "pip install $TORCH_SPEC failed"
  fi
  cuda_ok "$PY" || die "$("$PY" -c 'import torch; print(f"torch {torch.__version__} (CUDA build: {torch.version.cuda})")' 2>&1) \
sees no CUDA device: no GPU here, or a CPU build was installed (pass --torch-index with a CUDA wheel index)"
  "$PY" -c 'import torch; print(f"torch=={torch.__version__}")' > "$WORK/constraints.txt"
  # pyproject's dependencies less torch, and of those only the ones not met already
  "$PY" - "$REPO/pyproject.toml" > "$WORK/requirements.txt" <<'EOF'
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version

from pip._vendor.packaging.requirements import Requirement

deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
for line in [*deps, "setuptools>=68"]:  # setuptools: the package is installed without build isolation
    req = Requirement(line)
    if req.name.lower() == "torch":
        continue
    try:
        if req.specifier.contains(version(req.name), prereleases=True):
            continue
    except PackageNotFoundError:
        pass
    print(line)
EOF
  if [ -s "$WORK/requirements.txt" ]; then
    log "installing $(wc -l < "$WORK/requirements.txt") pinned dependencies into $VENV"
    "${pip[@]}" -c "$WORK/constraints.txt" -r "$WORK/requirements.txt" || die "pip could not install \
$(tr '\n' ' ' < "$WORK/requirements.txt")(offline? --find-links DIR with their wheels, or --python)"
  fi
  if [ ! -x "$VENV/bin/ncomp" ]; then
    "${pip[@]}" --no-deps --no-build-isolation -e "$REPO" \
      || log "warning: the editable install failed; the checkout runs from PYTHONPATH all the same"
  fi
}

if [ "$DRY" = 1 ]; then
  DEVICE=cpu
  if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=$REPO/.venv/bin/python; else PY=$(command -v python3) || die "no python3"; fi
  fi
else
  DEVICE=cuda
  setup_cuda
fi
"$PY" -c 'import neuralcomputer.cli' || die "$PY cannot import the package"
NCOMP=("$PY" -m neuralcomputer.cli)
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc_per_node 1)  # --standalone: a free port
log "python $PY, device $DEVICE, outputs in $WORK"

# Sizes. The real run uses each preset as it is (CLIGen in bf16); the dry run the same presets shrunk.
if [ "$DRY" = 1 ]; then
  SMALL=(height=136 width=320 num_frames=3 frame_stride=5 num_layers=1 num_attention_heads=2 attention_head_dim=24
         ffn_dim=96 freq_dim=32 text_dim=32 layers=1 heads=2 hidden=32 batch_size=2 sample_steps=2)
  WAN=(num_layers=1 num_attention_heads=2 attention_head_dim=32 ffn_dim=64 freq_dim=32 height=64 width=64
       num_frames=5 sample_steps=2)
  GUI=(num_layers=1 num_attention_heads=2 attention_head_dim=16 ffn_dim=64 freq_dim=16 text_dim=16
       latent_channels=8 hidden=32 context_frames=2 sample_steps=2 octaves=4 max_meta=2)
  TRAIN_STEPS=(--steps 1 --warmup 1); WAN_STEPS=(--steps 1 --warmup 1); CLIPS=1; FRAMES=3
  DDP_PRESET=cligen-tiny; DDP_SESSIONS=3; DDP_GRID=(--cols 40 --rows 8)
  DDP=(height=136 width=320 num_frames=3 frame_stride=5 num_layers=2 num_attention_heads=2 attention_head_dim=24
       ffn_dim=96 freq_dim=32 text_dim=32 layers=1 heads=2 sample_steps=2 tokenizer_steps=2 threads=1)
  THREADS=(--threads 1)
else
  SMALL=(); WAN=(); GUI=()
  TRAIN_STEPS=(--steps 10); WAN_STEPS=(--steps 5); CLIPS=2; FRAMES=60
  DDP_PRESET=cligen-small; DDP_SESSIONS=6; DDP_GRID=(--cols 80 --rows 24)
  DDP=(tokenizer_steps=50 mixed_precision=bf16)
  THREADS=()
fi
DDP+=(log_every=1 save_every=2 val_every=1000 warmup_steps=0)

# run STEP TIMEOUT CMD...: stdout -> WORK/STEP.jsonl, stderr -> WORK/STEP.log, outcome -> WORK/STEP.status.
# A step that would start after the budget is spent is skipped; none runs past it.
FAILED=0
run() {
  local step=$1 limit=$2 left t0 rc
  shift 2
  limit=$((limit * SLACK))
  left=$((BUDGET - SECONDS))
  if [ "$left" -lt 10 ]; then
    echo "skipped: the ${BUDGET} s budget was spent" > "$WORK/$step.status"; log "$step: skipped (budget)"
    FAILED=1; return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  t0=$SECONDS
  timeout -k 10 "$limit" "$@" > "$WORK/$step.jsonl" 2> "$WORK/$step.log"
  rc=$?
  if [ "$rc" = 0 ]; then echo "ok in $((SECONDS - t0)) s" > "$WORK/$step.status"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "timed out after $limit s" > "$WORK/$step.status"
  else echo "exit $rc after $((SECONDS - t0)) s" > "$WORK/$step.status"; fi
  log "$step: $(cat "$WORK/$step.status")"
  [ "$rc" = 0 ] || FAILED=1
  return "$rc"
}

# FLOPs are counted on the meta device (CPU only): in the background, beside the timed GPU steps.
(
  run flops-cligen-small 120 "${NCOMP[@]}" bench flops --preset cligen-small "${SMALL[@]}"
  run flops-wan 120 "${NCOMP[@]}" bench flops --preset wan2.1-i2v-1.3b "${WAN[@]}"
  run flops-guiworld 120 "${NCOMP[@]}" bench flops --model models/guiworld-tiny --preset guiworld-small "${GUI[@]}"
  run flops-ddp 120 "${NCOMP[@]}" bench flops --preset "$DDP_PRESET" "${DDP[@]}"
  exit "$FAILED"
) &
FLOPS_PID=$!

# The timed steps, the figures the issue's targets are about first.
run train-wan 180 "${NCOMP[@]}" bench train --preset wan2.1-i2v-1.3b "${WAN_STEPS[@]}" --device "$DEVICE" \
    "${THREADS[@]}" "${WAN[@]}"
run sample-wan 180 "${NCOMP[@]}" bench sample --preset wan2.1-i2v-1.3b --clips 1 --device "$DEVICE" --precision bf16 \
    "${THREADS[@]}" "${WAN[@]}"
run rollout-512 120 "${NCOMP[@]}" bench rollout --preset guiworld-small --frames "$FRAMES" --device "$DEVICE" \
    --precision bf16 "${THREADS[@]}" "${GUI[@]}"
run rollout-tiny 120 "${NCOMP[@]}" bench rollout --model models/guiworld-tiny --frames "$FRAMES" --device "$DEVICE" \
    --precision bf16 "${THREADS[@]}"
run train-cligen-small 150 "${NCOMP[@]}" bench train --preset cligen-small "${TRAIN_STEPS[@]}" --device "$DEVICE" \
    "${THREADS[@]}" "${SMALL[@]}" mixed_precision=bf16
run sample-cligen-small 120 "${NCOMP[@]}" bench sample --preset cligen-small --clips "$CLIPS" --device "$DEVICE" \
    --precision bf16 "${THREADS[@]}" "${SMALL[@]}"

# One torchrun launch that checkpoints and resumes: run "resumed" stops at step 2 (a checkpoint), a
# second launch continues it to step 4; run "straight" goes to step 4 in one launch on the same
# tokenizer. With one process accelerate still starts the process group (NCCL on CUDA) and the loop's
# barriers go through it, but nothing is wrapped or sharded: DDP and FSDP need two processes, and NCCL
# refuses two ranks on one GPU. Data: real terminal sessions recorded on the spot.
D=$WORK/ddp
ddp() {  # STEP OUT STEPS [overrides]: one launch as a step
  local step=$1 out=$2 steps=$3
  shift 3
  run "$step" 150 "${TORCHRUN[@]}" -m neuralcomputer.cli train --preset "$DDP_PRESET" --data "$D/data" --out "$out" \
      --steps "$steps" "${DDP[@]}" "$@"
}
if run ddp-record 60 "${NCOMP[@]}" data record --generator basic --count "$DDP_SESSIONS" --seed 0 "${DDP_GRID[@]}" \
       --out "$D/casts" \
   && run ddp-render 60 "${NCOMP[@]}" data render "$D/casts" --out "$D/data" \
   && ddp ddp-first "$D/resumed" 2; then
  ls "$D/resumed/checkpoints" | sed -n 's/^step-//p' | sort -n | tail -1 > "$D/resumed-from"
  ddp ddp-straight "$D/straight" 4 "model.tokenizer.path=$D/resumed/tokenizer/model"
  ddp ddp-resume "$D/resumed" 4
fi

wait "$FLOPS_PID" || FAILED=1
"$PY" -m neuralcomputer.bench.gpu_check --work "$WORK" --out "$OUT" --device "$DEVICE" --peak-tflops "$PEAK_TFLOPS" \
  $([ "$DRY" = 1 ] && echo --dry-run)
rc=$?
log "wrote $OUT (raw outputs and logs: $WORK)"
[ "$rc" = 0 ] && [ "$FAILED" = 0 ] && exit 0
exit 1
