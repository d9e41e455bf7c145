"""The one training loop: every component, one CPU or many GPUs (accelerate: DDP, bf16; torch FSDP2).

A run folder holds ``config.json`` (the resolved config), ``environment.json`` (versions, hardware,
git revision), ``parallel.json`` (how the weights are spread over processes), ``metrics.jsonl`` (one JSON object per log/validation event), ``checkpoints/step-N/``
(``model/`` and ``ema/`` model directories plus ``state.pt``: optimizer, LR schedule, EMA, RNG and
the data position) and, for presets with a learned tokenizer, ``tokenizer/``: the tokenizer's own run.

Checkpoints are written to a temporary folder and renamed, so a run killed at any moment (SIGKILL
included) resumes from its last complete checkpoint; data order and per-step randomness are pure
functions of (seed, step), so the resumed loss curve is the uninterrupted one (tested).

Launch on many GPUs with ``accelerate launch --multi_gpu -m neuralcomputer.cli train ...`` or
``torchrun --nproc_per_node N -m neuralcomputer.cli train ...`` (DDP; on CPUs torchrun gives gloo).
Add ``fsdp=true`` to shard weights, gradients and optimizer state over the processes instead of
replicating them (:mod:`neuralcomputer.train.fsdp`); checkpoints are the same whole-tensor files.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralcomputer.config import SMALLER, check_config, preset_config
from neuralcomputer.errors import NCError
from neuralcomputer.train.data import TIERS, check_dataset
from neuralcomputer.train.plots import plot_run
from neuralcomputer.train.tasks import make_task

STATE = "state.pt"
DONE = "done.json"  # written when a run reaches its last step


def environment() -> dict[str, Any]:
    """What a run ran on: versions, hardware and the git revision of the code."""
    import accelerate
    import diffusers

    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                                    timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        rev, dirty = None, None
    return {"python": sys.version.split()[0], "torch": torch.__version__, "diffusers": diffusers.__version__,
            "accelerate": accelerate.__version__, "numpy": np.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "git_revision": rev, "git_dirty": dirty, "argv": sys.argv}


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


def checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = Path(run) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step-*") if p.is_dir() and (p / STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _param_count_meta(config: dict[str, Any]) -> int:
    """Transformer parameters of a config, counted on the meta device (no memory used)."""
    from diffusers import WanTransformer3DModel

    from neuralcomputer.models.cligen import transformer_kwargs

    m = config["model"]
    t = transformer_kwargs(m, m["text"].get("text_dim", 4096) if "text" in m else 64)
    with torch.device("meta"):
        model = WanTransformer3DModel(in_channels=36, out_channels=16, **t)
    return sum(p.numel() for p in model.parameters())


def check_memory(config: dict[str, Any], device: torch.device, shards: int = 1) -> None:
    """Refuse a preset whose weights, gradients and AdamW state cannot fit, naming a smaller preset.

    ``shards``: the number of processes FSDP splits that state over (1 without FSDP).
    """
    if config["model"]["kind"] not in ("cligen", "guiworld"):
        return
    n = _param_count_meta(config)
    need = n * 16 // shards  # fp32 weights + grads + two AdamW moments
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        import psutil

        free = psutil.virtual_memory().available
    if need > free:
        smaller = SMALLER.get(config["preset"])
        hint = f"; try --preset {smaller}" if smaller else ""
        raise NCError(f"preset {config['preset']} needs ~{need / 2**30:.0f} GiB for its {n / 1e9:.2f}B-parameter "
                      f"transformer's weights, gradients and optimizer state, {free / 2**30:.0f} GiB is free{hint}")


class _LossModule(torch.nn.Module):
    """The task's module with the task's loss as its forward: what accelerate wraps for DDP."""

    def __init__(self, task) -> None:
        super().__init__()
        self.module = task.module
        self._compute_loss = task.compute_loss

    def forward(self, inputs: dict) -> torch.Tensor:
        return self._compute_loss(self.module, inputs)


class _Metrics:
    """Append-only JSONL metrics (and TensorBoard when installed)."""

    def __init__(self, run: Path, enabled: bool) -> None:
        self.path = run / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run / "tensorboard"))
            except ImportError:
                pass

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (written by a run that died before its next checkpoint)."""
        if not self.enabled or not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        tmp = self.path.with_name(".metrics.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        tmp.replace(self.path)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, int | float):
                    self.tb.add_scalar(k, v, record["step"])


def _with_new_defaults(saved: dict[str, Any], preset: str) -> dict[str, Any]:
    """``saved`` with the train keys added since it was written filled in from the preset's defaults.

    A run recorded before a key existed ran with that key's default behaviour, so resuming it
    with the default must not count as a different config.
    """
    try:
        defaults = preset_config(saved.get("preset", preset))["train"]
    except NCError:  # a preset since renamed: compare as saved
        return saved
    return {**saved, "train": {**defaults, **saved["train"]}}


def _paths_resolved(model: dict[str, Any]) -> dict[str, Any]:
    """``model`` with its tokenizer path made absolute: ``runs/tok`` and ``/work/runs/tok`` are one tokenizer."""
    tok = model.get("tokenizer") or {}
    if not tok.get("path"):
        return model
    return {**model, "tokenizer": {**tok, "path": str(Path(tok["path"]).resolve())}}


def train(config: dict[str, Any], data: str | Path, out: str | Path, *, progress: bool = True,
          stop_after: int | None = None) -> Path:
    """Train (or resume) the run in ``out``; returns the run folder.

    ``stop_after``: leave after this many steps of this call (tests use it to simulate a kill).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm import tqdm

    check_config(config)
    run, data = Path(out), Path(data)
    t = config["train"]
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    accelerator = Accelerator(mixed_precision=t["mixed_precision"], gradient_accumulation_steps=t["grad_accum"],
                              cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    fsdp = t["fsdp"] and accelerator.num_processes > 1  # one process has nothing to shard over
    # Everything that can be checked is checked before any work starts.
    check_memory(config, accelerator.device, accelerator.num_processes if fsdp else 1)
    model_cfg = config["model"]
    if model_cfg["kind"] in ("cligen", "cellgen"):
        tiers = TIERS if t["tier"] == "mixed" else (t["tier"],)
        max_len = model_cfg["text"].get("max_len") if model_cfg["text"]["kind"] == "bytes" else None
        check_dataset(data, model_cfg, max_len, tiers)
        check_dataset(data, model_cfg, max_len, tiers, split="val", required=False)
    else:
        check_dataset(data, model_cfg, None, ())

    # A learned tokenizer is trained first, as its own run inside this one.
    tok = config["model"].get("tokenizer", {})
    if config["model"]["kind"] in ("cligen", "guiworld") and tok.get("kind") == "cell-ae" and not tok.get("path"):
        tok_run = run / "tokenizer"
        tok_cfg = preset_config("cell-ae")
        tok_cfg["model"]["tokenizer"] = {k: v for k, v in tok.items() if k != "path"}
        tok_cfg["model"]["height"], tok_cfg["model"]["width"] = model_cfg["height"], model_cfg["width"]
        tok_cfg["model"]["resize_frames"] = model_cfg.get("resize_frames", False)
        tok_cfg["train"]["steps"] = t.get("tokenizer_steps", tok_cfg["train"]["steps"])
        tok_cfg["train"]["seed"] = t["seed"]
        tok_cfg["train"]["latent_noise"] = t["tokenizer_latent_noise"]
        # accelerate allows one precision per process, so the tokenizer trains in the run's precision
        tok_cfg["train"]["mixed_precision"] = t["mixed_precision"]
        if not (tok_run / DONE).is_file():
            train(tok_cfg, data, tok_run, progress=progress)
        config = copy.deepcopy(config)
        config["model"]["tokenizer"]["path"] = str((tok_run / "model").resolve())

    resumed = (run / "config.json").is_file()
    if resumed:
        saved = _with_new_defaults(json.loads((run / "config.json").read_text()), config["preset"])
        if _paths_resolved(saved["model"]) != _paths_resolved(config["model"]) or \
                {k: v for k, v in saved["train"].items() if k != "steps"} != \
                {k: v for k, v in config["train"].items() if k != "steps"}:
            raise NCError(f"{run}: holds a run with a different config; resume it with the same preset and "
                          "overrides (only steps may change), or choose a new --out")

    if main:
        run.mkdir(parents=True, exist_ok=True)
        if not resumed:
            _atomic_json(run / "config.json", config)
        _atomic_json(run / "environment.json", environment())
        for stale in (run / "checkpoints").glob(".tmp-*") if (run / "checkpoints").is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)  # a save cut short by a kill
    accelerator.wait_for_everyone()

    set_seed(t["seed"])
    task = make_task(config, data, run, progress=progress and main)
    raw = task.module
    loss_module = _LossModule(task)
    replica = None
    if fsdp:
        from neuralcomputer.train import fsdp as sharding

        # Validation and export need whole weights: the main process keeps an unsharded copy,
        # refreshed from the shards whenever it is used.
        replica = copy.deepcopy(raw) if main else None
        sharding.shard(loss_module.to(accelerator.device), accelerator.device, accelerator.num_processes)
    params = [p for p in raw.parameters() if p.requires_grad]  # DTensor shards under FSDP
    if not params:
        raise NCError(f"preset {config['preset']}: nothing to train")
    if main:  # how the trained weights are spread over the processes: the evidence that FSDP shards
        local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in params)
        _atomic_json(run / "parallel.json", {"mode": "fsdp" if fsdp else "ddp" if accelerator.num_processes > 1
                                             else "single", "processes": accelerator.num_processes,
                                             "trained_elements": sum(p.numel() for p in params),
                                             "trained_elements_on_main": local})
    optimizer = torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"], betas=tuple(t["betas"]))
    if t["lr_schedule"] == "cosine":
        scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=t["warmup_steps"], num_training_steps=t["steps"])
    else:
        scheduler = get_scheduler("constant_with_warmup" if t["warmup_steps"] else "constant", optimizer,
                                  num_warmup_steps=t["warmup_steps"])
    if fsdp:
        wrapper, optimizer = loss_module, accelerator.prepare(optimizer)
    else:
        # DDP wraps the loss itself, so every parameter the loss touches (caption encoder, image
        # context, transformer) is synchronised, not only those reached through the transformer's forward.
        wrapper, optimizer = accelerator.prepare(loss_module, optimizer)
    ema = EMAModel(params, decay=t["ema_decay"]) if t["ema_decay"] > 0 else None

    metrics = _Metrics(run, main)
    step = 0
    found = checkpoints(run)
    if found:
        try:
            state = torch.load(found[-1] / STATE, map_location="cpu", weights_only=False)
            if fsdp:
                sharding.load_model_state(wrapper, "module.", state["model"])
            else:
                raw.load_state_dict(state["model"])
        except Exception as e:  # torch raises several types on a damaged file
            raise NCError(f"{found[-1] / STATE}: unreadable checkpoint ({str(e).splitlines()[0][:200]}); "
                          "delete this checkpoint folder to resume from the one before it") from None
        if fsdp:
            sharding.load_optimizer_state(wrapper, optimizer.optimizer, state["optimizer"])
        else:
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
            if fsdp:
                ema.shadow_params = sharding.shard_like(ema.shadow_params, params)
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        step = state["step"]
        metrics.truncate_after(step)
    if step >= t["steps"]:
        return run

    def whole_weights() -> tuple[torch.nn.Module | None, list[torch.Tensor] | None]:
        """The module holding the current whole weights on the main process, and the whole EMA weights
        under FSDP (collective there: every process must call it)."""
        if not fsdp:
            return raw, None
        state = sharding.model_state(wrapper, "module.")
        ema_whole = sharding.whole(ema.shadow_params) if ema is not None else None
        if main:
            replica.load_state_dict(state)
        return replica, ema_whole

    @contextlib.contextmanager
    def ema_weights(module: torch.nn.Module, ema_whole: list[torch.Tensor] | None):
        """``module`` holds the EMA weights inside the block (main process only)."""
        if ema is None:
            yield
            return
        targets = [p for p in module.parameters() if p.requires_grad] if fsdp else params
        kept = [p.detach().clone() for p in targets]
        with torch.no_grad():
            for p, w in zip(targets, ema_whole if fsdp else ema.shadow_params, strict=True):
                p.copy_(w)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in zip(targets, kept, strict=True):
                    p.copy_(w)

    def save(step: int) -> None:
        module, ema_whole = whole_weights()
        optim_state = sharding.optimizer_state(wrapper, optimizer.optimizer) if fsdp else None
        if not main:
            return
        final = run / "checkpoints" / f"step-{step}"
        tmp = run / "checkpoints" / f".tmp-step-{step}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        task.export(module, tmp / "model")
        if ema is not None:
            with ema_weights(module, ema_whole):
                task.export(module, tmp / "ema")
            ema_state = {**ema.state_dict(), "shadow_params": ema_whole} if fsdp else ema.state_dict()
        torch.save({"model": module.state_dict(), "optimizer": optim_state if fsdp else optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "ema": ema_state if ema is not None else None, "step": step,
                    "data_position": step * t["batch_size"] * accelerator.num_processes * t["grad_accum"],
                    "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}}, tmp / STATE)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoints(run)[: -t["keep_checkpoints"]]:
            shutil.rmtree(old, ignore_errors=True)
        # run/model: the latest weights (EMA when kept) as a plain model directory
        shutil.rmtree(run / ".tmp-model", ignore_errors=True)
        shutil.copytree(final / ("ema" if ema is not None else "model"), run / ".tmp-model")
        shutil.rmtree(run / "model", ignore_errors=True)
        os.replace(run / ".tmp-model", run / "model")
        if step == t["steps"]:
            _atomic_json(run / DONE, {"step": step, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def validate(step: int) -> None:
        module, ema_whole = whole_weights()
        if not main:
            return
        if fsdp:
            module.to(accelerator.device)
        with ema_weights(module, ema_whole):
            module.eval()
            scores = task.validate(module, step)
            module.train()
        if fsdp:
            module.to("cpu")  # the replica waits in host memory, not on the accelerator
        if scores:
            metrics.log({"step": step, **{f"val/{k}": v for k, v in scores.items()}})
        plot_run(run)

    bar = tqdm(total=t["steps"], initial=step, desc=f"train {config['preset']}", unit="step", disable=not main or not progress,
               dynamic_ncols=True)
    wrapper.train()
    grad_norm = torch.tensor(0.0)
    started, window_start, window_samples, done_here = time.time(), time.time(), 0, 0
    try:
        while step < t["steps"]:
            total, samples = 0.0, 0
            for micro in range(t["grad_accum"]):
                with accelerator.accumulate(wrapper):
                    if fsdp:  # reduce-scatter gradients only on the micro-step that updates
                        wrapper.set_requires_gradient_sync(accelerator.sync_gradients)
                    inputs, n = task.batch(step, accelerator.process_index, accelerator.num_processes, micro,
                                           t["batch_size"])
                    try:
                        with accelerator.autocast() if fsdp else contextlib.nullcontext():  # prepare() does it for DDP
                            loss = wrapper(inputs)
                    except (torch.OutOfMemoryError, RuntimeError) as e:
                        if not isinstance(e, torch.OutOfMemoryError) and "allocate memory" not in str(e):
                            raise
                        smaller = SMALLER.get(config["preset"])
                        raise NCError(f"out of memory training preset {config['preset']}"
                                      + (f"; try --preset {smaller} or a smaller batch_size" if smaller
                                         else "; try a smaller batch_size")) from None
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        grad_norm = (sharding.clip_grad_norm_(params, t["grad_clip"]) if fsdp
                                     else accelerator.clip_grad_norm_(params, t["grad_clip"]))
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                total += float(loss.detach()) / t["grad_accum"]
                samples += n
            scheduler.step()
            if ema is not None:
                ema.step(params)
            if accelerator.num_processes > 1:  # log the loss of the whole batch, not of rank 0's share
                total = float(accelerator.reduce(torch.tensor(total, device=accelerator.device), "mean"))
            step += 1
            done_here += 1
            window_samples += samples * accelerator.num_processes
            if not math.isfinite(total):
                raise NCError(f"step {step}: loss is {total}; lower lr (now {t['lr']}) or check the data")
            bar.update(1)
            bar.set_postfix(loss=f"{total:.4f}")
            if step % t["log_every"] == 0 or step == t["steps"]:
                elapsed = time.time() - window_start
                metrics.log({"step": step, "loss": total, "lr": scheduler.get_last_lr()[0],
                             "grad_norm": float(grad_norm), "samples_per_s": window_samples / max(elapsed, 1e-9),
                             "elapsed_s": time.time() - started})
                window_start, window_samples = time.time(), 0
            if step % t["val_every"] == 0 or step == t["steps"]:
                validate(step)
            if step % t["save_every"] == 0 or step == t["steps"]:
                save(step)
            if stop_after is not None and done_here >= stop_after:
                break
    finally:
        bar.close()
    if accelerator.num_processes > 1 and not fsdp:
        # Every rank must hold the same weights; a difference means gradients were not synchronised.
        checksum = torch.stack([p.detach().double().sum() for p in params]).sum().reshape(1).to(accelerator.device)
        sums = accelerator.gather(checksum)
        if not torch.equal(sums, sums[:1].expand_as(sums)):  # synchronised updates are bit-identical
            raise NCError(f"data-parallel ranks diverged (weight checksums {sums.tolist()})")
    accelerator.wait_for_everyone()
    return run
