"""Typed run configs, named presets and checked ``key=value`` overrides.

A run's config is two parts: ``model`` (what is saved with the weights and needed to sample) and
``train`` (how it is trained). Presets fill both; overrides change single leaves, typed by the value
they replace, so ``lr=abc`` or ``num_layers=2.5`` fail before any work starts.

Presets (see ``docs``/README for FLOPs and sizes):

* ``cell-ae``: the cell autoencoder tokenizer of the CPU presets (trained first, minutes).
* ``cligen-cells``: CellGen, the CPU design of CLIGen: one token per character cell from an exact tile
  codec, the caption laid out in cells, a copy prior, masked discrete diffusion (``models/cellgen.py``).
* ``cligen-tiny``: ~4M-parameter Wan DiT over cell-AE latents, 5 frames at 1 fps; trains on 2 CPU cores.
* ``cligen-small``: ~60M parameters, 9 frames at ~2 fps; a single GPU (or a patient CPU).
* ``wan2.1-i2v-1.3b`` / ``wan2.1-i2v-14b``: the real Wan2.1 sizes with the Wan VAE, UMT5 and (14B)
  the CLIP image context; for GPUs, fine-tuned from local weights (``model.pretrained=PATH``).
"""

from __future__ import annotations

import copy
import difflib
import json
from typing import Any

from neuralcomputer.errors import NCError

# Training defaults: the paper's fine-tuning settings (AdamW, lr 5e-5, weight decay 1e-2, clip 1.0).
TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 1000,
    "batch_size": 2,
    "grad_accum": 1,
    "lr": 5e-5,
    "weight_decay": 1e-2,
    "betas": [0.9, 0.999],
    "grad_clip": 1.0,
    "warmup_steps": 0,
    "lr_schedule": "constant",  # constant | cosine (decays to 0 at the last step)
    "ema_decay": 0.999,
    "seed": 0,
    "tier": "mixed",  # caption tier per example: semantic|regular|detailed|mixed
    "caption_dropout": 0.1,  # for classifier-free guidance
    "mixed_precision": "no",  # "bf16" on GPUs
    "fsdp": False,  # shard weights, gradients and optimizer state over the processes (FSDP2) instead of DDP
    "gradient_checkpointing": False,
    "cache_latents": True,
    "log_every": 10,
    "save_every": 250,
    "keep_checkpoints": 3,
    "val_every": 250,
    "val_clips": 4,
    "val_steps": 10,
    "threads": 0,  # CPU threads for PyTorch (0: its default); 1 keeps a background run off the other core
    "tokenizer_steps": 2000,  # for presets whose tokenizer is learned first (cell-ae)
    "tokenizer_latent_noise": 0.0,
}

_CELL_AE = {"kind": "cell-ae", "cell": [17, 8], "latent_channels": 16, "hidden": 256}

PRESETS: dict[str, dict[str, Any]] = {
    "cell-ae": {
        "model": {"kind": "tokenizer", "tokenizer": dict(_CELL_AE), "height": 408, "width": 640},
        "train": {"steps": 2000, "batch_size": 2048, "lr": 2e-3, "weight_decay": 0.0, "warmup_steps": 50,
                  "lr_schedule": "cosine",
                  "ema_decay": 0.0, "save_every": 500, "val_every": 500, "cache_latents": False,
                  "ink_fraction": 0.5, "latent_noise": 0.0},
    },
    "cligen-tiny": {
        "model": {
            "kind": "cligen",
            "tokenizer": {**_CELL_AE, "path": None},  # path: a trained cell-ae (else trained first)
            "text": {"kind": "bytes", "text_dim": 128, "layers": 2, "heads": 4, "max_len": 1600},
            "transformer": {"patch_size": [1, 2, 4], "num_attention_heads": 6, "attention_head_dim": 32,
                            "ffn_dim": 768, "num_layers": 6, "freq_dim": 64, "rope_max_seq_len": 256},
            "image": None,
            "pretrained": None,
            "height": 408, "width": 640, "num_frames": 5, "frame_stride": 15, "fps": 15,
            "flow_shift": 3.0, "sampler": "unipc", "sample_steps": 20, "guidance_scale": 2.0,
        },
        # Trained from scratch, so a higher learning rate than the paper's fine-tuning 5e-5.
        "train": {"steps": 3000, "batch_size": 2, "lr": 5e-4, "warmup_steps": 200, "ema_decay": 0.999,
                  "save_every": 250, "val_every": 500, "tokenizer_steps": 3000, "tokenizer_latent_noise": 0.3},
    },
    "cligen-cells": {
        "model": {
            "kind": "cellgen",
            # width and depth sized for 2 CPU cores: ~2 s per step of 8 clips (15k cell tokens) on one thread
            "net": {"dim": 96, "layers": 3, "heads": 4, "mlp_ratio": 2, "max_rows": 64, "max_cols": 256,
                    "max_text": 4096, "copy_prior": True, "timing_input": True},
            "text": {"kind": "bytes", "max_len": 4096},  # the caption bytes the network reads
            "layout": True,  # the caption's scroll and quoted lines laid out in cells (ablation: False)
            "regular_hints": True,  # regular captions' commands and last line laid out where they likely stand
            "changed_weight": 4.0,  # loss weight of the cells that change, beside 1 for those that stay
            "height": 408, "width": 640, "num_frames": 75, "frame_stride": 1, "fps": 15,
            "sample_steps": 1,  # masked-diffusion passes per clip
            "constrain": True,  # sampling: a cell draws the character the caption fixes there (style free)
            "coherent_switch": True,  # sampling: per row, switch frames non-decreasing left to right
            "timing": True,  # sampling: a changed cell switches within its row's window, where the caption times it
            "typing": True,  # sampling: a timed row ending in a typed command shows the prompt, then key by key
            "key_frames": "auto",  # frames between two keys there: the train split's median (measured in training)
            "timing_dropout": 0.25,  # training: share of captions with their timing sentence removed
        },
        "train": {"steps": 3000, "batch_size": 8, "lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.999,
                  "save_every": 250, "val_every": 250, "val_clips": 16, "caption_dropout": 0.0,
                  "cache_latents": False},
    },
    "cligen-small": {
        "model": {
            "kind": "cligen",
            "tokenizer": {**_CELL_AE, "path": None},  # path: a trained cell-ae (else trained first)
            "text": {"kind": "bytes", "text_dim": 256, "layers": 4, "heads": 4, "max_len": 1600},
            "transformer": {"patch_size": [1, 2, 2], "num_attention_heads": 8, "attention_head_dim": 64,
                            "ffn_dim": 2048, "num_layers": 12, "freq_dim": 256, "rope_max_seq_len": 512},
            "image": None,
            "pretrained": None,
            "height": 408, "width": 640, "num_frames": 9, "frame_stride": 8, "fps": 15,
            "flow_shift": 3.0, "sampler": "unipc", "sample_steps": 30, "guidance_scale": 3.0,
        },
        "train": {"steps": 100000, "batch_size": 8, "lr": 2e-4, "warmup_steps": 1000},
    },
    # Real Wan2.1 sizes (diffusers' Wan2.1 configs). I2V: 16 noise + 4 mask + 16 first-frame channels.
    "wan2.1-i2v-1.3b": {
        "model": {
            "kind": "cligen",
            "tokenizer": {"kind": "wan-vae", "path": None},
            "text": {"kind": "umt5", "path": None, "max_len": 512},
            "transformer": {"patch_size": [1, 2, 2], "num_attention_heads": 12, "attention_head_dim": 128,
                            "ffn_dim": 8960, "num_layers": 30, "freq_dim": 256, "rope_max_seq_len": 1024,
                            "text_dim": 4096},
            "image": None,
            "pretrained": None,
            "height": 408, "width": 640, "num_frames": 33, "frame_stride": 2, "fps": 15,
            "flow_shift": 3.0, "sampler": "unipc", "sample_steps": 40, "guidance_scale": 5.0,
        },
        "train": {"steps": 60000, "batch_size": 1, "lr": 5e-5, "mixed_precision": "bf16",
                  "gradient_checkpointing": True},
    },
    "wan2.1-i2v-14b": {
        "model": {
            "kind": "cligen",
            "tokenizer": {"kind": "wan-vae", "path": None},
            "text": {"kind": "umt5", "path": None, "max_len": 512},
            "transformer": {"patch_size": [1, 2, 2], "num_attention_heads": 40, "attention_head_dim": 128,
                            "ffn_dim": 13824, "num_layers": 40, "freq_dim": 256, "rope_max_seq_len": 1024,
                            "text_dim": 4096, "added_kv_proj_dim": 5120},
            "image": {"kind": "clip", "path": None, "image_dim": 1280},
            "pretrained": None,
            "height": 408, "width": 640, "num_frames": 33, "frame_stride": 2, "fps": 15,
            "flow_shift": 3.0, "sampler": "unipc", "sample_steps": 40, "guidance_scale": 5.0,
        },
        "train": {"steps": 60000, "batch_size": 1, "lr": 5e-5, "mixed_precision": "bf16",
                  "gradient_checkpointing": True},
    },
}

# GUIWorld: next-frame models of a desktop; frames are resized from the recorded screen size.
_GUIWORLD_TOKENIZER = {"kind": "cell-ae", "cell": [8, 8], "latent_channels": 16, "hidden": 256}
PRESETS["guiworld-tiny"] = {
    "model": {
        "kind": "guiworld",
        "tokenizer": {**_GUIWORLD_TOKENIZER, "path": None},  # path: a trained cell-ae (else trained first)
        "transformer": {"patch_size": [1, 2, 2], "num_attention_heads": 4, "attention_head_dim": 32,
                        "ffn_dim": 512, "num_layers": 4, "freq_dim": 64, "rope_max_seq_len": 64, "text_dim": 64},
        "actions": {"encoder": "meta", "coords": "fourier", "octaves": 8, "max_meta": 4},
        "injection": "internal",  # external | contextual | residual | internal
        "residual_blocks": 2,
        "cursor_reference": True,  # the target's reference channels show the cursor alone (paper: 98.7%)
        "cursor_loss_weight": 4.0,  # extra loss weight on the latent cells the cursor covers
        "height": 192, "width": 256, "resize_frames": True, "context_frames": 3, "frame_stride": 1, "fps": 15,
        "context_noise": 0.1,  # training: context latents noised at a level drawn from U(0, this)
        "rollout_context_noise": 0.02,  # rollout: the fixed level generated context is treated at
        "flow_shift": 3.0, "sampler": "euler", "sample_steps": 4,
    },
    "train": {"steps": 3000, "batch_size": 4, "lr": 3e-4, "warmup_steps": 100, "ema_decay": 0.999,
              "save_every": 250, "val_every": 500, "val_clips": 2, "val_frames": 8, "caption_dropout": 0.0,
              # desktop frames (measured, 8x8 cells, val PSNR): latent noise 0.3 + 1,500 steps 24.4 dB;
              # noise 0 + 2,000 steps 32.5 dB; noise 0.1, 256 wide, 1,000 steps 33.0 dB
              "cache_latents": True, "tokenizer_steps": 3000, "tokenizer_latent_noise": 0.1},
}
PRESETS["guiworld-small"] = {
    "model": {
        **PRESETS["guiworld-tiny"]["model"],
        "tokenizer": {**_GUIWORLD_TOKENIZER, "latent_channels": 32, "hidden": 256, "path": None},
        "transformer": {"patch_size": [1, 2, 2], "num_attention_heads": 8, "attention_head_dim": 64,
                        "ffn_dim": 2048, "num_layers": 12, "freq_dim": 256, "rope_max_seq_len": 64, "text_dim": 256},
        "height": 384, "width": 512, "context_frames": 7, "sample_steps": 8,
    },
    "train": {"steps": 100000, "batch_size": 16, "lr": 2e-4, "warmup_steps": 1000, "val_frames": 30,
              "caption_dropout": 0.0, "tokenizer_steps": 5000, "tokenizer_latent_noise": 0.1},
}

PRESETS["guiworld-base"] = {  # the paper's screen, a Wan2.1-1.3B-sized DiT: for GPUs
    "model": {
        **PRESETS["guiworld-tiny"]["model"],
        "tokenizer": {**_GUIWORLD_TOKENIZER, "latent_channels": 32, "hidden": 256, "path": None},
        "transformer": {"patch_size": [1, 2, 2], "num_attention_heads": 12, "attention_head_dim": 128,
                        "ffn_dim": 8960, "num_layers": 30, "freq_dim": 256, "rope_max_seq_len": 64, "text_dim": 256},
        "height": 768, "width": 1024, "context_frames": 7, "sample_steps": 8,
    },
    "train": {"steps": 60000, "batch_size": 4, "lr": 1e-4, "warmup_steps": 1000, "val_frames": 30,
              "caption_dropout": 0.0, "mixed_precision": "bf16", "tokenizer_steps": 20000,
              "tokenizer_latent_noise": 0.1},
}

PRESETS["guiworld-delta"] = {  # DeskDelta, the CPU design of GUIWorld (models/deskdelta.py)
    "model": {
        "kind": "guiworld-delta",
        # channels per level (48x64, 24x32, 12x16 grids at 256x192), FiLM width, blocks per level
        "net": {"channels": [48, 96, 160], "cond_dim": 128, "blocks": 1, "heads": 4,
                "attention": True},  # self-attention over the 12x16 grid (ablation: False)
        "copy_prior": True,  # gate over the previous framebuffer (ablation: False, the frame regressed whole)
        # the ablations of the paper's tables on this design (models/deskdelta.py docstring): where the
        # action vector enters (internal | external | contextual | residual), raw events or meta-actions,
        # and whether the runtime composites the cursor or the network draws it (mask | position | fourier)
        "injection": "internal", "actions": "raw", "cursor": "composited",
        "height": 192, "width": 256, "resize_frames": True, "screen": [512, 384], "fps": 15,
        "frame_stride": 1, "context_frames": 2,  # previous framebuffers read
        # also read the framebuffer this many steps back (what a closing menu covered); 0: none. Measured
        # at 2,500 steps, seed 0 only: val frames that change, PSNR 30 -> 17.12 dB, 0 -> 16.81 (copy
        # 16.64); held-out one-step PSNR +0.78 dB [-0.23, 2.55], 31-frame rollout SSIM -0.006 [-0.008,
        # -0.005] (reports/desktop-dd-mem vs -dd-main): not settled, the levers table at 2 seeds decides
        "memory": 30,
        "history": 8,  # steps of input drawn on the grid and summarised (a menu opens a few frames late)
        "gate_bias": -6.0,  # initial gate logit: the untrained model copies the previous framebuffer
        "changed_boost": 8.0,  # frames whose framebuffer changes are drawn this much more often
        "gate_threshold": 0.0,  # sampling: a pixel changes where its gate logit exceeds this
        # the transition memory (models/deskmemory.py), stored beside the weights at export: "alone"
        # replays the nearest training transition's change and copies the rest (the network is not run);
        # "over-network" pastes it over the network's frame; "off" is the network alone. The key's
        # weights are deskmemory.DEFAULTS unless given here
        "recall": {"mode": "alone"},
    },
    "train": {"steps": 3000, "batch_size": 8, "lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.995,
              "weight_decay": 0.0, "save_every": 250, "val_every": 250, "val_clips": 2, "val_frames": 32,
              "caption_dropout": 0.0, "cache_latents": False, "lr_schedule": "cosine"},
}

# Which preset to suggest when one does not fit in memory.
SMALLER = {"wan2.1-i2v-14b": "wan2.1-i2v-1.3b", "wan2.1-i2v-1.3b": "cligen-small", "cligen-small": "cligen-tiny", "guiworld-base": "guiworld-small", "guiworld-small": "guiworld-tiny"}


def preset_config(name: str) -> dict[str, Any]:
    """A deep copy of a preset as ``{"preset", "model", "train"}``, with train defaults filled in."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise NCError(f"unknown preset {name!r}{hint}; presets: {', '.join(PRESETS)}")
    preset = copy.deepcopy(PRESETS[name])
    return {"preset": name, "model": preset["model"], "train": {**copy.deepcopy(TRAIN_DEFAULTS), **preset["train"]}}


def _leaves(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaves(value, path + "."))
        out[path] = value
    return out


def _parse(raw: str, old: Any, key: str) -> Any:
    """Parse ``raw`` as the type of ``old`` (the value it replaces)."""
    def fail(expected: str) -> NCError:
        return NCError(f"override {key}={raw}: expected {expected}")

    if raw.lower() in ("none", "null") and (old is None or key.endswith(("path", "pretrained", "image"))):
        return None
    if isinstance(old, bool):
        if raw.lower() in ("true", "1", "yes", "on"):
            return True
        if raw.lower() in ("false", "0", "no", "off"):
            return False
        raise fail("true or false")
    if isinstance(old, int):
        try:
            return int(raw)
        except ValueError:
            raise fail("an integer") from None
    if isinstance(old, float):
        try:
            return float(raw)
        except ValueError:
            raise fail("a number") from None
    if isinstance(old, list | dict):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise fail(f"JSON {type(old).__name__}, e.g. {json.dumps(old)}") from None
        if type(value) is not type(old):
            raise fail(f"a {type(old).__name__}")
        return value
    return raw  # strings and None-valued paths take the text as is


def apply_overrides(config: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key=value`` overrides; ``key`` is a dotted path (``model.transformer.num_layers``) or a
    leaf name that is unique in the config (``num_layers``, ``lr``)."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise NCError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        leaves = _leaves({"model": config["model"], "train": config["train"]})
        if key in leaves:
            path = key
        else:
            matches = [p for p in leaves if p.rsplit(".", 1)[-1] == key]
            if len(matches) > 1:
                raise NCError(f"override {key}: ambiguous, say which: {', '.join(matches)}")
            if not matches:
                names = sorted({p.rsplit(".", 1)[-1] for p in leaves} | set(leaves))
                close = difflib.get_close_matches(key, names, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise NCError(f"override {key}: no such setting in preset {config['preset']}{hint}")
            path = matches[0]
        *parents, leaf = path.split(".")
        node = config
        for p in parents:
            node = node[p]
        if isinstance(node[leaf], dict):
            raise NCError(f"override {key}: a group, not a setting; set one of its keys (e.g. {path}.KEY=...)")
        node[leaf] = _parse(raw, node[leaf], key)
    check_config(config)
    return config


def check_config(config: dict[str, Any]) -> None:
    """Cross-field checks that a type alone cannot express."""
    m, t = config["model"], config["train"]
    if t["tier"] not in ("semantic", "regular", "detailed", "mixed"):
        raise NCError(f"tier={t['tier']}: expected semantic, regular, detailed or mixed")
    if t["lr_schedule"] not in ("constant", "cosine"):
        raise NCError(f"lr_schedule={t['lr_schedule']}: expected constant or cosine")
    if t["mixed_precision"] not in ("no", "bf16", "fp16"):
        raise NCError(f"mixed_precision={t['mixed_precision']}: expected no, bf16 or fp16")
    for key in ("steps", "batch_size", "grad_accum", "log_every", "save_every", "val_every"):
        if t[key] < 1:
            raise NCError(f"{key}={t[key]}: expected a positive integer")
    if not 0 <= t["caption_dropout"] < 1 or not 0 <= t["ema_decay"] < 1:
        raise NCError("caption_dropout and ema_decay must lie in [0, 1)")
    if m["kind"] == "guiworld-delta":
        from neuralcomputer.models.deskdelta import ACTION_KINDS, CURSOR_KINDS
        from neuralcomputer.models.deskdelta import INJECTIONS as DELTA_INJECTIONS

        for key, allowed in (("injection", DELTA_INJECTIONS), ("actions", ACTION_KINDS), ("cursor", CURSOR_KINDS)):
            if m.get(key, allowed[0]) not in allowed:
                raise NCError(f"{key}={m[key]}: expected one of {', '.join(allowed)}")
    if m["kind"] == "guiworld":
        from neuralcomputer.models.guiworld import INJECTIONS

        if m["injection"] not in INJECTIONS:
            raise NCError(f"injection={m['injection']}: expected one of {', '.join(INJECTIONS)}")
        if m["actions"]["encoder"] not in ("raw", "meta") or m["actions"]["coords"] not in ("raw", "fourier"):
            raise NCError("actions.encoder must be raw or meta, actions.coords raw or fourier")
        if m["context_frames"] < 1 or m["frame_stride"] < 1 or m["sample_steps"] < 1:
            raise NCError("context_frames, frame_stride and sample_steps must be >= 1")
        if not 0 <= m["context_noise"] < 1 or not 0 <= m["rollout_context_noise"] < 1:
            raise NCError("context_noise and rollout_context_noise must lie in [0, 1)")
        if t["fsdp"]:
            # FSDP2 gathers a block's weights when the block's forward runs; GUIWorld's frame-causal
            # attention calls each block's layers one by one, so they would stay sharded. Refuse.
            raise NCError("fsdp=true is not supported for GUIWorld models yet (use DDP: leave fsdp=false)")
    if m["kind"] == "cellgen":
        if m["sample_steps"] < 1 or m["num_frames"] < 2:
            raise NCError("sample_steps must be >= 1 and num_frames >= 2")
        if m["text"]["max_len"] != m["net"]["max_text"]:
            raise NCError("text.max_len and net.max_text must agree (override both)")
    if m["kind"] == "cligen":
        if m["num_frames"] < 2 or m["frame_stride"] < 1:
            raise NCError("num_frames must be >= 2 and frame_stride >= 1")
        if m["sampler"] not in ("euler", "unipc"):
            raise NCError(f"sampler={m['sampler']}: expected euler or unipc")
        if m["sample_steps"] < 1:
            raise NCError("sample_steps must be >= 1")
