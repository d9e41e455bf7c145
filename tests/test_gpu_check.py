"""``experiments/gpu-check.sh``: the GPU check's CPU dry run writes every figure, and its report step
never hides a missing one.

The figure names are spelled out here rather than read from the module, so that a figure dropped from
the script and from :data:`neuralcomputer.bench.gpu_check.EXPECTED` together still fails this test.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from neuralcomputer.bench import gpu_check

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "experiments" / "gpu-check.sh"
FIGURES = ("cligen_small_train", "wan_1.3b_train", "cligen_small_sample", "wan_1.3b_sample",
           "guiworld_tiny_rollout", "guiworld_512x384_rollout", "ddp_checkpoint_resume")


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.slow
@pytest.mark.timeout(1600)  # 1-4 minutes on 2 shared cores; the script's own dry-run budget is 1,800 s
def test_dry_run_writes_every_figure_once_with_a_finite_value(tmp_path):
    out = tmp_path / "gpu-check.jsonl"
    result = subprocess.run([str(SCRIPT), "--dry-run", "--out", str(out)], capture_output=True, text=True,
                            timeout=1500, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    names = [r["figure"] for r in rows]
    for name in FIGURES:
        assert names.count(name) == 1, f"{name}: {names.count(name)} lines"
    assert sorted(names) == sorted(FIGURES)
    for row in rows:
        assert _finite(row["value"]), row
        assert _finite(row["mfu"]) and row["mfu"] >= 0, row  # every figure beside its FLOPs utilisation
        assert row["device"] == "cpu" and row["dry_run"] is True and row["peak_flops_assumed"] == 989e12
    by = {r["figure"]: r for r in rows}
    assert by["ddp_checkpoint_resume"]["value"] == 0.0  # resume on CPU is exact
    assert by["ddp_checkpoint_resume"]["resumed_from_step"] == 2 and by["ddp_checkpoint_resume"]["steps"] == [1, 2, 3, 4]
    assert by["wan_1.3b_train"]["bench"]["transformer_only"] is True
    assert by["wan_1.3b_train"]["bench"]["mixed_precision"] == "bf16"
    assert by["guiworld_512x384_rollout"]["size"] == "512x384"
    assert (tmp_path / "gpu-check-work" / "train-wan.log").is_file()  # the raw outputs stay for a post-mortem


def _bench_outputs(work: Path) -> None:
    """Raw step outputs as the script leaves them, for every figure (numbers made up, shapes real)."""
    def write(step: str, *lines: dict) -> None:
        (work / f"{step}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    train = {"steps_per_s": 2.0, "samples_per_s": 16.0, "s_per_step": 0.5, "batch_size": 8}
    write("train-cligen-small", {"figure": "train_bare_diffusers", **train},
          {"figure": "train_ours", **train, "overhead_vs_bare": 0.01}, {"figure": "train_peak_rss_mb", "value": 500.0})
    write("train-wan", {"figure": "train_bare_diffusers", **train, "transformer_only": True},
          {"figure": "train_peak_gpu_mem_mb", "value": 30000.0})
    sample = {"figure": "sample_s_per_clip", "value": 4.0, "sampler": "unipc", "steps": 40, "guidance_scale": 5.0}
    write("sample-cligen-small", sample)
    write("sample-wan", sample)
    rollout = {"figure": "rollout_frames_per_s", "value": 30.0, "size": "512x384", "steps": 8, "context_frames": 7}
    write("rollout-tiny", rollout)
    write("rollout-512", rollout)
    write("flops-cligen-small", {"figure": "flops", "preset": "cligen-small", "train_step_flops": 1e12,
                                 "sample_clip_flops": 4e12})
    write("flops-wan", {"figure": "flops", "preset": "wan2.1-i2v-1.3b", "train_step_flops": 1e14,
                        "sample_clip_flops": 3e15})
    write("flops-guiworld", {"figure": "flops", "preset": "models/guiworld-tiny", "model": "models/guiworld-tiny",
                             "rollout_frame_flops": 5e9},
          {"figure": "flops", "preset": "guiworld-small", "rollout_frame_flops": 3e12})
    write("flops-ddp", {"figure": "flops", "preset": "cligen-tiny", "train_step_flops": 2e9})
    for run in ("resumed", "straight"):
        folder = work / "ddp" / run
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "loss": 1.0 / s, "samples_per_s": 4.0}) + "\n" for s in (1, 2, 3, 4)))
        (folder / "config.json").write_text(json.dumps({"preset": "cligen-tiny", "train": {
            "batch_size": 2, "mixed_precision": "no"}}))
    (work / "ddp" / "resumed-from").write_text("2\n")


def _env(device: str) -> dict:
    return {"device": device}


def test_report_computes_mfu_from_the_flops_of_the_timed_config(tmp_path):
    _bench_outputs(tmp_path)
    rows = {r["figure"]: r for r in gpu_check.assemble(tmp_path, "cuda", False, 1000.0, env=_env)}
    assert tuple(rows) == FIGURES
    assert rows["wan_1.3b_train"]["mfu"] == pytest.approx(1e14 * 2.0 / 1e15)
    assert rows["wan_1.3b_train"]["peak_mem_kind"] == "torch.cuda.max_memory_allocated"
    assert rows["wan_1.3b_sample"]["mfu"] == pytest.approx(3e15 / 4.0 / 1e15)
    assert rows["guiworld_tiny_rollout"]["mfu"] == pytest.approx(5e9 * 30 / 1e15)  # the bundled model's own FLOPs
    assert rows["guiworld_512x384_rollout"]["mfu"] == pytest.approx(3e12 * 30 / 1e15)
    assert rows["ddp_checkpoint_resume"]["value"] == 0.0
    assert rows["ddp_checkpoint_resume"]["mfu"] == pytest.approx(2e9 / 2 * 4.0 / 1e15)


def test_report_writes_a_missing_figure_with_its_reason_and_fails(tmp_path):
    _bench_outputs(tmp_path)
    (tmp_path / "sample-wan.jsonl").write_text("")
    (tmp_path / "sample-wan.status").write_text("exit 1 after 3 s")
    (tmp_path / "sample-wan.log").write_text("Traceback ...\nRuntimeError: CUDA error: out of memory\n")
    # a second launch that started over instead of resuming logs its steps twice
    resumed = tmp_path / "ddp" / "resumed" / "metrics.jsonl"
    resumed.write_text(resumed.read_text() * 2)
    out = tmp_path / "out.jsonl"
    assert gpu_check.main(["--work", str(tmp_path), "--out", str(out), "--device", "cpu"]) == 1
    rows = {r["figure"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert tuple(rows) == FIGURES  # every figure still has its line
    assert rows["wan_1.3b_sample"]["value"] is None
    assert "exit 1 after 3 s" in rows["wan_1.3b_sample"]["error"] and "out of memory" in rows["wan_1.3b_sample"]["error"]
    assert rows["ddp_checkpoint_resume"]["value"] is None
    assert _finite(rows["wan_1.3b_train"]["value"])
