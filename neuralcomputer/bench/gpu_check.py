"""The figures of ``experiments/gpu-check.sh``: bench outputs joined with their FLOPs, one line each.

The script runs ``ncomp bench train|sample|rollout|flops`` and a torchrun launch that checkpoints and
resumes, each writing its own raw output into a work folder; this module reads those files and writes
one JSON line per figure: the measured value, what it was measured on, and the model FLOPs
utilisation ``MFU = FLOPs per unit of work x units per second / peak FLOP/s``, with the FLOPs from
``ncomp bench flops`` for the very configuration that was timed. Nothing here measures anything.

A figure whose step failed or was skipped is still written, with ``value: null`` and the reason, so
that a partial run on a lent accelerator keeps every figure it did measure.

Run as ``python -m neuralcomputer.bench.gpu_check --work DIR --out FILE [--dry-run] [--peak-tflops N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# NVIDIA's dense (no sparsity) BF16 tensor-core peak of the H100/H200 SXM: the H200 is an H100 with
# more and faster memory, the same compute.
DEFAULT_PEAK_TFLOPS = 989.0

# figure -> (bench output file, bench figure, flops file, flops key, the flops file's line, unit of work)
FIGURES: dict[str, tuple[str, str, str, str, str, str]] = {
    "cligen_small_train": ("train-cligen-small", "train_ours", "flops-cligen-small", "train_step_flops",
                           "cligen-small", "step"),
    "wan_1.3b_train": ("train-wan", "train_bare_diffusers", "flops-wan", "train_step_flops", "wan2.1-i2v-1.3b",
                       "step"),
    "cligen_small_sample": ("sample-cligen-small", "sample_s_per_clip", "flops-cligen-small", "sample_clip_flops",
                            "cligen-small", "clip"),
    "wan_1.3b_sample": ("sample-wan", "sample_s_per_clip", "flops-wan", "sample_clip_flops", "wan2.1-i2v-1.3b",
                        "clip"),
    "guiworld_tiny_rollout": ("rollout-tiny", "rollout_frames_per_s", "flops-guiworld", "rollout_frame_flops",
                              "model", "frame"),
    "guiworld_512x384_rollout": ("rollout-512", "rollout_frames_per_s", "flops-guiworld", "rollout_frame_flops",
                                 "guiworld-small", "frame"),
}
RESUME = "ddp_checkpoint_resume"
EXPECTED = (*FIGURES, RESUME)


def read_lines(path: Path) -> list[dict]:
    """The JSON objects of a bench output file (other lines, e.g. a warning printed to stdout, skipped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _pick(lines: list[dict], figure: str) -> dict | None:
    return next((line for line in lines if line.get("figure") == figure), None)


def _flops_line(lines: list[dict], which: str) -> dict | None:
    """The ``ncomp bench flops`` line of a preset (``which``) or of the ``--model`` directory (``model``)."""
    for line in lines:
        if (which == "model" and "model" in line) or (which != "model" and line.get("preset") == which
                                                      and "model" not in line):
            return line
    return None


def _failure(work: Path, step: str) -> str:
    """Why a step left no figure: its status file (exit code, skip reason) and the tail of its log."""
    status = work / f"{step}.status"
    reason = status.read_text().strip() if status.is_file() else "not run"
    log = work / f"{step}.log"
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
    return reason + (": " + " | ".join(tail) if tail else "")


def _mfu(flops: float | None, per_s: float | None, peak: float) -> float | None:
    if flops is None or per_s is None or not math.isfinite(per_s):
        return None
    return flops * per_s / peak


def _peak_memory(lines: list[dict], prefix: str) -> dict[str, Any]:
    gpu = _pick(lines, f"{prefix}_peak_gpu_mem_mb")
    if gpu is not None:
        return {"peak_mem_mb": gpu["value"], "peak_mem_kind": "torch.cuda.max_memory_allocated"}
    rss = _pick(lines, f"{prefix}_peak_rss_mb")
    return {"peak_mem_mb": rss["value"], "peak_mem_kind": "peak RSS of the process"} if rss else {}


def bench_figure(work: Path, name: str, peak: float) -> dict[str, Any]:
    """One timed figure from its bench output and its ``ncomp bench flops`` line."""
    step, figure, flops_step, flops_key, flops_which, unit = FIGURES[name]
    lines = read_lines(work / f"{step}.jsonl")
    row = _pick(lines, figure)
    flops_line = _flops_line(read_lines(work / f"{flops_step}.jsonl"), flops_which)
    flops = flops_line.get(flops_key) if flops_line else None
    out: dict[str, Any] = {"figure": name, "unit": None, "value": None}
    if row is None:
        return {**out, "error": _failure(work, step)}
    prefix = figure.split("_")[0]  # train | sample | rollout
    if unit == "step":
        out.update(unit="steps/s", value=row["steps_per_s"], samples_per_s=row["samples_per_s"],
                   s_per_step=row["s_per_step"], batch_size=row["batch_size"])
        per_s = row["steps_per_s"]
        if "overhead_vs_bare" in row:
            bare = _pick(lines, "train_bare_diffusers")
            out.update(overhead_vs_bare=row["overhead_vs_bare"], bare_steps_per_s=bare and bare["steps_per_s"])
    elif unit == "clip":
        out.update(unit="s/clip", value=row["value"], sampler=row["sampler"], sampler_steps=row["steps"],
                   guidance_scale=row["guidance_scale"])
        per_s = 1 / row["value"]
    else:
        uncached = _pick(lines, "rollout_uncached_frames_per_s")
        split = _pick(lines, "rollout_s_per_frame_split")
        out.update(unit="frames/s", value=row["value"], size=row["size"], sampler_steps=row["steps"],
                   context_frames=row["context_frames"], uncached_frames_per_s=uncached and uncached["value"],
                   s_per_frame_split=split and split["value"])
        per_s = row["value"]
    out.update(_peak_memory(lines, prefix))
    keep = ("preset", "model", "transformer_only", "transformer_params", "tokens_per_sample", "mixed_precision",
            "precision", "gradient_checkpointing", "device", "note")
    out["bench"] = {k: row[k] for k in keep if k in row}
    out.update(flops_per_unit=flops, flops_key=f"ncomp bench flops: {flops_key}", mfu=_mfu(flops, per_s, peak))
    if flops is None:
        out["mfu_error"] = "no FLOPs: " + _failure(work, flops_step)
    return out


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_lines(run / "metrics.jsonl") if "loss" in r}


def resume_figure(work: Path, peak: float) -> dict[str, Any]:
    """The torchrun launch: run A stopped at a checkpoint and resumed, against run B straight through.

    ``value``: the largest relative loss difference between the resumed curve and the uninterrupted one
    (0 when resume is exact; on a GPU, non-deterministic kernels may leave a small difference).
    """
    out: dict[str, Any] = {"figure": RESUME, "unit": "max relative loss difference, resumed vs straight",
                           "value": None}
    a, b = work / "ddp" / "resumed", work / "ddp" / "straight"
    la, lb = _losses(a), _losses(b)
    steps = sorted(lb)
    # each step logged once: a second launch that started over instead of resuming logs steps 1, 2 again
    logged = [r["step"] for r in read_lines(a / "metrics.jsonl") if "loss" in r]
    if not la or not lb or sorted(la) != steps or len(logged) != len(set(logged)):
        return {**out, "steps_resumed": logged, "steps_straight": steps,
                "error": "; ".join(f"{s}: {_failure(work, s)}" for s in ("ddp-first", "ddp-straight", "ddp-resume"))}
    diff = max(abs(la[s] - lb[s]) / max(abs(lb[s]), 1e-12) for s in steps)
    config = json.loads((a / "config.json").read_text())
    parallel = json.loads((a / "parallel.json").read_text()) if (a / "parallel.json").is_file() else {}
    env = json.loads((a / "environment.json").read_text()) if (a / "environment.json").is_file() else {}
    resumed_from = (work / "ddp" / "resumed-from").read_text().strip() if (work / "ddp" / "resumed-from").is_file() else None
    rates = [r["samples_per_s"] for r in read_lines(a / "metrics.jsonl") if "samples_per_s" in r]
    flops_line = _flops_line(read_lines(work / "flops-ddp.jsonl"), config["preset"])
    batch = config["train"]["batch_size"]
    per_sample = flops_line["train_step_flops"] / batch if flops_line else None
    out.update(value=diff, steps=steps, resumed_from_step=int(resumed_from) if resumed_from else None,
               losses_resumed=[la[s] for s in steps], losses_straight=[lb[s] for s in steps],
               preset=config["preset"], mixed_precision=config["train"]["mixed_precision"],
               parallel=parallel, launcher="torchrun --nproc_per_node 1", cuda=env.get("cuda"),
               samples_per_s_median=statistics.median(rates) if rates else None,
               flops_per_unit=per_sample, flops_key="ncomp bench flops: train_step_flops / batch_size",
               mfu=_mfu(per_sample, statistics.median(rates) if rates else None, peak),
               note="a launch, checkpoint and resume check, not a speed figure; with one process the process "
                    "group starts (NCCL on CUDA) but neither DDP nor FSDP wraps the model (both need >= 2 "
                    "processes): parallel.json says single")
    return out


def environment(device: str) -> dict[str, Any]:
    """What the figures were measured on (this interpreter is the one the benchmarks ran in)."""
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None
    return {"device": device, "gpu": gpu, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def assemble(work: Path, device: str, dry_run: bool, peak_tflops: float,
             env: Callable[[str], dict[str, Any]] = environment) -> list[dict[str, Any]]:
    """Every figure of :data:`EXPECTED`, in order, each with the run's common fields."""
    peak = peak_tflops * 1e12
    common = {**env(device), "dry_run": dry_run, "peak_flops_assumed": peak,
              "peak_flops_basis": f"{peak_tflops:g} TFLOPS bf16 dense (H100/H200 SXM: 989); MFU = FLOPs x rate / this"}
    rows = [bench_figure(work, name, peak) for name in FIGURES] + [resume_figure(work, peak)]
    return [{**row, **common} for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="the script's work folder (raw bench outputs)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines file to write (replaced)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=DEFAULT_PEAK_TFLOPS)
    args = parser.parse_args(argv)
    rows = assemble(args.work, args.device, args.dry_run, args.peak_tflops)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(args.out)
    missing = [r["figure"] for r in rows if not isinstance(r["value"], int | float) or not math.isfinite(r["value"])]
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.4g} {row['unit']}"
        mfu = "" if row.get("mfu") is None else f"  MFU {100 * row['mfu']:.3g}%"
        print(f"{row['figure']:>26}: {value}{mfu}{'  ' + row['error'] if 'error' in row else ''}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
