"""The training loop: checked configs and data, run folders, exact resume after SIGKILL (overfitting:
test_overfit.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralcomputer.config import apply_overrides, preset_config
from neuralcomputer.data.dataset import load_manifest, read_clip_payload
from neuralcomputer.errors import NCError
from neuralcomputer.models.cligen import CLIGenModel
from neuralcomputer.pipelines.cligen import resolve_model_dir
from neuralcomputer.runtime.computer import NeuralComputer
from neuralcomputer.train.loop import checkpoints, train
from tests.cligen_helpers import TINY, make_tiny_dataset, tiny_config

NCOMP = str(Path(sys.executable).with_name("ncomp"))


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("train"))


def _ncomp(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([NCOMP, *args], capture_output=True, text=True, timeout=timeout)


# -- configs ------------------------------------------------------------------------------------
def test_overrides_are_typed_and_checked():
    config = apply_overrides(preset_config("cligen-tiny"), ["lr=1e-4", "num_layers=3", "tier=detailed",
                                                            "model.transformer.patch_size=[1,2,2]"])
    assert config["train"]["lr"] == 1e-4 and config["model"]["transformer"]["num_layers"] == 3
    assert config["model"]["transformer"]["patch_size"] == [1, 2, 2]
    for bad, message in [("lr=abc", "expected a number"), ("num_layers=2.5", "expected an integer"),
                         ("num_layer=2", "did you mean num_layers"), ("gradient_checkpointing=maybe", "true or false"),
                         ("tier=fancy", "expected semantic"), ("patch_size=3", "expected a list"), ("patch_size=[1,2", "JSON list"),
                         ("transformer=1", "a group, not a setting"), ("nokey", "expected key=value")]:
        with pytest.raises(NCError, match=message):
            apply_overrides(preset_config("cligen-tiny"), [bad])
    with pytest.raises(NCError, match="unknown preset 'cligen-tinny' \\(did you mean cligen-tiny\\?\\)"):
        preset_config("cligen-tinny")


def test_bad_input_fails_before_any_work(tiny_ds, tmp_path):
    cases = [
        (["--preset", "nope"], "unknown preset"),
        (["--preset", "cligen-tiny", "lr=abc"], "expected a number"),
        (["--preset", "cligen-tiny", "--data", str(tmp_path / "missing")], "no such dataset"),
        (["--preset", "cligen-tiny"], "frames are 320x136, the preset expects 640x408"),
        (["--preset", "cligen-tiny", *TINY, "max_len=20"], "caption is .* bytes, over text max_len=20"),
        (["--preset", "wan2.1-i2v-14b"], "preset wan2.1-i2v-14b needs ~.* GiB .* try --preset wan2.1-i2v-1.3b"),
    ]
    for args, message in cases:
        if "--data" not in args:
            args = [*args, "--data", str(tiny_ds)]
        out = tmp_path / "run"
        result = _ncomp("train", *args, "--out", str(out))
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and __import__("re").search(message, lines[0]), result.stderr
        assert not out.exists()  # nothing started, nothing written
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.jsonl").write_text("")
    result = _ncomp("train", "--preset", "cligen-tiny", "--data", str(empty), "--out", str(tmp_path / "r2"), *TINY)
    assert result.returncode == 2 and "split is empty" in result.stderr


# -- resume -------------------------------------------------------------------------------------
def _losses(run: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_resume_after_sigkill_reproduces_the_loss_curve(tiny_ds, tmp_path):
    args = ["--preset", "cligen-tiny", "--data", str(tiny_ds), "--steps", "24", *TINY, "tokenizer_steps=20",
            "save_every=6", "val_every=100", "threads=1"]
    straight = tmp_path / "straight"
    result = _ncomp("train", *args, "--out", str(straight))
    assert result.returncode == 0, result.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen([NCOMP, "train", *args, "--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any(int(p.name.split("-")[1]) >= 12 for p in checkpoints(killed)):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait()
    steps_done = [int(p.name.split("-")[1]) for p in checkpoints(killed)]
    assert steps_done and max(steps_done) < 24, "the run finished before it could be killed"
    result = _ncomp("train", *args, "--out", str(killed))
    assert result.returncode == 0, result.stderr
    a, b = _losses(straight), _losses(killed)
    assert sorted(a) == sorted(b) == list(range(1, 25))
    assert [a[s] for s in sorted(a)] == [b[s] for s in sorted(b)]  # the same curve, exactly


def test_resume_refuses_a_different_config(tiny_ds, tmp_path, monkeypatch):
    config = tiny_config(extra=["tokenizer_steps=5", "save_every=2"])
    config["train"]["steps"] = 2
    train(config, tiny_ds, tmp_path / "run", progress=False)
    changed = apply_overrides(config, ["lr=1e-3"])
    with pytest.raises(NCError, match="different config"):
        train(changed, tiny_ds, tmp_path / "run", progress=False)
    more = apply_overrides(config, ["steps=3"])  # only steps may change
    train(more, tiny_ds, tmp_path / "run", progress=False)
    assert [p.name for p in checkpoints(tmp_path / "run")][-1] == "step-3"
    run = tmp_path / "run"
    # a run recorded before a train key existed ran with its default: it resumes with the default...
    saved = json.loads((run / "config.json").read_text())
    del saved["train"]["fsdp"]
    (run / "config.json").write_text(json.dumps(saved))
    train(apply_overrides(config, ["steps=4"]), tiny_ds, run, progress=False)
    assert [p.name for p in checkpoints(run)][-1] == "step-4"
    with pytest.raises(NCError, match="different config"):  # ...and not with another value
        train(apply_overrides(config, ["steps=5", "fsdp=true"]), tiny_ds, run, progress=False)
    more = apply_overrides(config, ["steps=4"])
    # the tokenizer the run trained, named by a relative path, is the same tokenizer
    monkeypatch.chdir(tmp_path)
    train(apply_overrides(more, ["model.tokenizer.path=run/tokenizer/model"]), tiny_ds, run, progress=False)
    env = json.loads((run / "environment.json").read_text())
    assert env["torch"] and env["diffusers"] and "git_revision" in env
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == config["train"]["lr"]
    # a corrupt checkpoint is a clear error, not a traceback
    model_dir = resolve_model_dir(checkpoints(run)[-1])
    assert model_dir.name == "ema"  # EMA weights are what a checkpoint samples with
    (model_dir / "transformer.safetensors").write_bytes(b"\0" * 10)
    from PIL import Image

    Image.fromarray(np.zeros((136, 320, 3), np.uint8)).save(run / "x.png")
    result = _ncomp("sample", "--model", str(checkpoints(run)[-1]), "--first-frame", str(run / "x.png"),
                    "--caption", "x", "--out", str(run / "x.mp4"))
    assert result.returncode == 2 and "unreadable weights" in result.stderr and not (run / "x.mp4").exists()
    with pytest.raises(NCError, match="unreadable weights"):
        CLIGenModel.from_pretrained(model_dir)
    (checkpoints(run)[-1] / "state.pt").write_bytes(b"truncated")
    with pytest.raises(NCError, match="unreadable checkpoint"):
        train(more, tiny_ds, run, progress=False)


# -- a trained run, used through the CLI like a user would ------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tiny_ds, tmp_path_factory):
    config = tiny_config(extra=["tokenizer_steps=30", "save_every=4", "val_every=4"])
    config["train"]["steps"] = 4
    return train(config, tiny_ds, tmp_path_factory.mktemp("run") / "run", progress=False)


def test_run_folder_layout_and_metrics(trained_run):
    run = trained_run
    assert (run / "done.json").is_file() and (run / "model" / "config.json").is_file()
    assert (run / "tokenizer" / "model" / "tokenizer.safetensors").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    val = [r for r in records if "val/char_acc" in r]
    assert val and {"val/val_loss", "val/psnr", "val/ssim", "val/char_acc", "val/line_acc"} <= set(val[0])
    assert all(np.isfinite(r["loss"]) and r["samples_per_s"] > 0 for r in records if "loss" in r)
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert (run / "curves.png").stat().st_size > 1000


def test_sample_cli_is_byte_identical_and_exports(trained_run, tiny_ds, tmp_path):
    from PIL import Image

    record = load_manifest(tiny_ds)[0]
    first = read_clip_payload(tiny_ds / record["path"])["frames"][0]
    Image.fromarray(first).save(tmp_path / "first.png")
    outs = []
    for name in ("a.mp4", "b.mp4", "pngs"):
        result = _ncomp("sample", "--model", str(trained_run), "--first-frame", str(tmp_path / "first.png"),
                        "--caption", record["captions"]["detailed"], "--out", str(tmp_path / name), "--seed", "3",
                        "--steps", "3")
        assert result.returncode == 0, result.stderr
        outs.append(tmp_path / name)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    pngs = sorted(outs[2].iterdir())
    assert [p.name for p in pngs[:2]] == ["frame-000.png", "frame-001.png"] and len(pngs) == 11
    from neuralcomputer.eval.videos import read_mp4

    decoded = read_mp4(outs[0])  # lossless: the mp4 decodes to exactly the PNG frames
    assert np.array_equal(decoded, np.stack([np.asarray(Image.open(p)) for p in pngs]))
    assert np.array_equal(decoded[0], first)
    result = _ncomp("export", "--model", str(trained_run), "--out", str(tmp_path / "exported"))
    assert result.returncode == 0, result.stderr
    model = CLIGenModel.from_pretrained(tmp_path / "exported")
    assert model.config["num_frames"] == 3
    too_long = _ncomp("sample", "--model", str(tmp_path / "exported"), "--first-frame", str(tmp_path / "first.png"),
                      "--caption", "x" * 2000, "--out", str(tmp_path / "c.mp4"))
    assert too_long.returncode == 2 and "2000 bytes; this model reads at most 1600" in too_long.stderr


def test_eval_and_probes_take_a_trained_model(trained_run, tiny_ds, tmp_path):
    result = _ncomp("eval", "--model", str(trained_run), "--data", str(tiny_ds), "--split", "all",
                    "--out", str(tmp_path / "report"), "--no-tesseract")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["clips"] == len(load_manifest(tiny_ds)) and report["psnr"] > 0
    from neuralcomputer.eval.probes import probe_determinism
    from neuralcomputer.runtime.computer import load_generator

    model = load_generator(str(trained_run))
    assert isinstance(model, NeuralComputer) and model.kind == "terminal"  # eval and probes run the runtime
    first = read_clip_payload(tiny_ds / load_manifest(tiny_ds)[0]["path"])["frames"][0]
    result = probe_determinism(model, first, "echo hi", runs=2, seed=0, num_frames=6)
    assert result["identical_fraction"] == 1.0


def test_gradient_checkpointing_gives_the_same_losses(tiny_ds, tmp_path):
    losses = []
    for flag in ("false", "true"):
        config = tiny_config(extra=["tokenizer_steps=5", "val_every=100", "save_every=100",
                                    f"gradient_checkpointing={flag}", "threads=1"])
        config["train"]["steps"] = 3
        losses.append(_losses(train(config, tiny_ds, tmp_path / flag, progress=False)))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def _torchrun(data: Path, out: Path, steps: int, *overrides: str) -> None:
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    result = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "-m", "neuralcomputer.cli", "train", "--preset", "cligen-tiny", "--data",
         str(data), "--out", str(out), "--steps", str(steps), *TINY, "tokenizer_steps=5", "save_every=2",
         "val_every=4", "threads=1", "warmup_steps=0", *overrides], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def test_bf16_autocast_trains_float32_weights(tiny_ds, tmp_path):
    """``mixed_precision=bf16`` (the GPU presets' setting) runs the forward in bfloat16 and keeps the
    weights, optimizer and checkpoints in float32; on CPU it goes through the same accelerate autocast.
    (A process holds one accelerate precision, hence the subprocesses. The tokenizer trains first in the
    run's precision: one step, as bfloat16 convolutions on CPU take ~25 s a step at this size.)"""
    runs = {}
    for precision in ("no", "bf16"):
        runs[precision] = tmp_path / precision
        result = _ncomp("train", "--preset", "cligen-tiny", "--data", str(tiny_ds), "--out", str(runs[precision]),
                        "--steps", "3", *TINY, "tokenizer_steps=1", "save_every=3", "val_every=3", "warmup_steps=0",
                        "threads=1", f"mixed_precision={precision}")
        assert result.returncode == 0, result.stderr[-2000:]
    full, half = _losses(runs["no"]), _losses(runs["bf16"])
    assert sorted(half) == [1, 2, 3] and all(np.isfinite(v) for v in half.values())
    assert half[1] != full[1]  # autocast really ran in bfloat16...
    assert half[1] == pytest.approx(full[1], rel=0.05)  # ...on the same weights and batch
    weights = CLIGenModel.from_pretrained(resolve_model_dir(runs["bf16"])).state_dict()
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float32}


@pytest.mark.slow
def test_two_process_ddp_and_fsdp_runs_agree(tiny_ds, tmp_path):
    """The multi-GPU code paths, run as two CPU processes over gloo (torchrun sets the world).

    DDP: the loop ends by checking that both ranks hold bit-identical weights (without gradient
    synchronisation this run fails with "ranks diverged", checked by hand). FSDP: each process holds
    half the weights, the loss curve is DDP's (same batches, same updates, only the reduction order
    differs), and a run stopped at a checkpoint and resumed continues that same curve.
    """
    _torchrun(tiny_ds, tmp_path / "ddp", 4)
    ddp = _losses(tmp_path / "ddp")
    assert sorted(ddp) == [1, 2, 3, 4]
    assert json.loads((tmp_path / "ddp" / "parallel.json").read_text())["mode"] == "ddp"
    assert CLIGenModel.from_pretrained(resolve_model_dir(tmp_path / "ddp")).config["num_frames"] == 3

    _torchrun(tiny_ds, tmp_path / "fsdp", 2, "fsdp=true")
    _torchrun(tiny_ds, tmp_path / "fsdp", 4, "fsdp=true")  # resumes from the step-2 checkpoint
    spread = json.loads((tmp_path / "fsdp" / "parallel.json").read_text())
    assert spread["mode"] == "fsdp" and spread["processes"] == 2
    assert spread["trained_elements_on_main"] < 0.6 * spread["trained_elements"]
    fsdp = _losses(tmp_path / "fsdp")
    assert sorted(fsdp) == [1, 2, 3, 4]
    for step, loss in ddp.items():
        assert fsdp[step] == pytest.approx(loss, rel=1e-5)
    # the checkpoints hold whole tensors: the exported model loads in one process and matches DDP's
    a = CLIGenModel.from_pretrained(resolve_model_dir(tmp_path / "fsdp")).state_dict()
    b = CLIGenModel.from_pretrained(resolve_model_dir(tmp_path / "ddp")).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_bench_commands_print_json_figures(tiny_ds, tmp_path):
    result = _ncomp("bench", "flops", "--preset", "cligen-tiny", "--preset", "wan2.1-i2v-14b")
    assert result.returncode == 0, result.stderr
    tiny, big = (json.loads(line) for line in result.stdout.splitlines())
    assert tiny["train_step_flops"] > 0 and big["train_step_flops"] > 1000 * tiny["train_step_flops"]
    result = _ncomp("bench", "train", "--steps", "1", "--threads", "1", *TINY)
    assert result.returncode == 0, result.stderr
    figures = {f["figure"]: f for f in map(json.loads, result.stdout.splitlines())}
    assert figures["train_ours"]["s_per_step"] > 0 and "overhead_vs_bare" in figures["train_ours"]
    assert figures["train_bare_diffusers"]["transformer_params"] == figures["train_ours"]["transformer_params"]
    result = _ncomp("bench", "tokenizer", "--data", str(tiny_ds), "--clips", "1")
    assert result.returncode == 2 and "no test clips" in result.stderr  # the tiny set has train/val only
