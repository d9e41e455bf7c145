"""Overfitting: the model learns to draw the clips it saw (the tokenizer, then the denoiser on it).

Its own file: ``make test`` gives each worker whole files (``--dist loadfile``), and this one test is the
suite's longest (~3 min quiet, ~7 min beside the rest); beside test_training.py's others it made one
worker's file the suite's tail.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuralcomputer.config import apply_overrides, preset_config
from neuralcomputer.data.dataset import load_manifest, read_clip_payload
from neuralcomputer.models.cligen import CLIGenModel
from neuralcomputer.pipelines.cligen import CLIGenPipeline, resolve_model_dir
from neuralcomputer.train.common import frame_scores
from neuralcomputer.train.loop import train
from tests.cligen_helpers import make_tiny_dataset, tiny_config


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("overfit"))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~3 min on a quiet 2-core machine; generous for a loaded one
def test_overfit_a_handful_of_clips(tiny_ds, tmp_path):
    # The tokenizer first, as a user can (`ncomp train --preset cell-ae`), then the denoiser on it.
    tok = apply_overrides(preset_config("cell-ae"), ["height=136", "width=320", "batch_size=512", "steps=1000",
                                                     "latent_noise=0.3", "val_every=1000", "save_every=1000"])
    train(tok, tiny_ds, tmp_path / "tok", progress=False)
    tok_val = [json.loads(line) for line in (tmp_path / "tok" / "metrics.jsonl").read_text().splitlines()][-1]
    assert tok_val["val/char_acc"] > 0.95  # text survives the tokenizer
    config = tiny_config(extra=["lr=1e-3", "warmup_steps=20", "caption_dropout=0", "tier=detailed", "ema_decay=0.99",
                                "save_every=500", "val_every=500", "num_layers=4", "attention_head_dim=32",
                                "num_attention_heads=4", "ffn_dim=512", f"model.tokenizer.path={tmp_path / 'tok' / 'model'}"])
    config["train"]["steps"] = 500
    run = train(config, tiny_ds, tmp_path / "run", progress=False)
    records = [r for r in load_manifest(tiny_ds) if r["split"] == "train"]

    def score(pipe: CLIGenPipeline) -> float:
        chars = []
        for i, r in enumerate(records):
            frames = read_clip_payload(tiny_ds / r["path"])["frames"]
            ref = frames[np.minimum(np.arange(3) * 5, len(frames) - 1)]
            pred = pipe.sample_frames(ref[:1], [r["captions"]["detailed"]], seed=i)[0]
            chars.append(frame_scores(pred[1:], ref[1:])["char_acc"])
        return float(np.mean(chars))

    trained = CLIGenModel.from_pretrained(resolve_model_dir(run))
    untrained_cfg = dict(trained.config)
    import torch

    torch.manual_seed(1)
    untrained = CLIGenModel(untrained_cfg)  # same trained tokenizer, fresh denoiser
    trained_acc = score(CLIGenPipeline(trained, steps=20, guidance_scale=1.0))
    untrained_acc = score(CLIGenPipeline(untrained, steps=20, guidance_scale=1.0))
    assert trained_acc > 0.5 and trained_acc > untrained_acc + 0.4, (trained_acc, untrained_acc)
