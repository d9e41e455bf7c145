"""Which tokenizer a new run of ``ncomp train`` uses: a trained one by default, a new one when asked.

A learned (cell autoencoder) tokenizer is trained first, inside the run, unless the config names one
(``tokenizer.path``). For ``cligen-tiny`` that is 3,000 steps, over an hour on a CPU, before the first
step of what the user asked for; the bundled models ship trained tokenizers of the presets' own shape.
So ``ncomp train`` reuses a bundled model's tokenizer when one has the preset's tokenizer config, and
trains a new one only when asked: ``--train-tokenizer``, or an override of the tokenizer's training
(``tokenizer_steps=``, ``tokenizer_latent_noise=``). A resumed run keeps the tokenizer it started with.
The library's :func:`~neuralcomputer.train.loop.train` is unchanged: a config without a path trains one.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from neuralcomputer.errors import NCError
from neuralcomputer.models.cligen import read_model_config

# Overrides that only mean something if a tokenizer is trained: giving one is asking for that.
TOKENIZER_TRAINING_KEYS = ("tokenizer_steps", "tokenizer_latent_noise")
_SHAPE = ("kind", "cell", "latent_channels", "hidden")  # what makes two cell-ae tokenizers interchangeable


def _asks_to_train(overrides: list[str]) -> bool:
    return any(o.partition("=")[0].rsplit(".", 1)[-1] in TOKENIZER_TRAINING_KEYS for o in overrides)


def _bundled_match(tok: dict[str, Any], kind: str, bundled: dict[str, Path]) -> Path | None:
    """The first bundled model of this kind whose tokenizer has ``tok``'s shape (and ships its weights)."""
    for path in bundled.values():
        try:
            cfg = read_model_config(path)
        except NCError:
            continue
        theirs = cfg["model"].get("tokenizer") or {}
        if (cfg.get("kind", "cligen") == kind and (path / "tokenizer.safetensors").is_file()
                and all(theirs.get(k) == tok.get(k) for k in _SHAPE)):
            return path
    return None


def choose_tokenizer(config: dict[str, Any], out: Path, overrides: list[str], *, train_new: bool,
                     bundled: dict[str, Path]) -> tuple[dict[str, Any], str]:
    """The run's config with its tokenizer chosen, and one line saying which (the run's first line).

    Args:
        config: the resolved run config (preset plus overrides).
        out: the run folder (a ``config.json`` there means the run is resumed).
        overrides: the ``key=value`` overrides as given (an override of the tokenizer's training asks
            for a new one).
        train_new: ``--train-tokenizer``: train a new tokenizer first, inside the run.
        bundled: name -> model directory of the bundled models (may be empty).
    """
    model = config["model"]
    tok = model.get("tokenizer") or {}
    if model.get("kind") == "tokenizer":  # ncomp train --preset cell-ae
        return config, f"tokenizer: {tok.get('kind')}, trained by this run"
    if model.get("kind") not in ("cligen", "guiworld") or tok.get("kind") != "cell-ae":
        if train_new:
            raise NCError(f"--train-tokenizer: preset {config.get('preset')} has no tokenizer to train "
                          f"(its tokenizer is {tok.get('kind', 'none')!r})")
        where = f" from {tok['path']}" if tok.get("path") else ""
        return config, f"tokenizer: {tok.get('kind', 'none')}{where}"
    if tok.get("path"):
        if train_new:
            raise NCError("--train-tokenizer and tokenizer.path= ask for different tokenizers: give one of them")
        return config, f"tokenizer: {tok['path']} (tokenizer.path)"
    in_run = out / "tokenizer"
    new = (f"tokenizer: a new one, trained first in {in_run} "
           f"({config['train'].get('tokenizer_steps')} steps; resumable)")
    saved = out / "config.json"
    if saved.is_file() and not train_new:  # resuming: the tokenizer the run started with
        try:
            path = (json.loads(saved.read_text())["model"].get("tokenizer") or {}).get("path")
        except (ValueError, KeyError, TypeError, AttributeError):
            path = None  # the loop names what is wrong with the saved config
        if path and Path(path).resolve() != (in_run / "model").resolve():
            config = copy.deepcopy(config)
            config["model"]["tokenizer"]["path"] = path
            return config, f"tokenizer: {path} (as the run being resumed)"
        return config, new
    if train_new or _asks_to_train(overrides) or in_run.is_dir():  # (a tokenizer cut short goes on training)
        return config, new
    match = _bundled_match(tok, model["kind"], bundled)
    if match is None:
        return config, new + " (no bundled model has this tokenizer)"
    config = copy.deepcopy(config)
    config["model"]["tokenizer"]["path"] = str(match.resolve())
    return config, (f"tokenizer: the bundled model's, {match} (--train-tokenizer trains a new one "
                    f"first, {config['train'].get('tokenizer_steps')} steps)")
