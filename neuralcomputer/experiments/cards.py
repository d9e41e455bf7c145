"""Check a shipped model against its card: rebuild a small held-out set, score it, compare.

A model directory may hold ``check.json``: how to rebuild a small held-out set from nothing (fresh
terminal sessions recorded in a real pty, or fresh desktop episodes collected on a real XFCE
desktop, never seen in training), the metrics measured on it when the model was shipped, and the
tolerance that covers re-recording noise (measured by rebuilding the set more than once). ``ncomp eval
card --model DIR`` rebuilds the set, scores the model and fails when a metric leaves its tolerance;
``make test`` runs it for both bundled models. ``--write`` measures and writes the figures for a new
model (``tolerance`` is kept when the file exists).

``check.json``::

    {"kind": "terminal", "generators": [...], "seed": 1000, "clips": 7, "tier": "detailed",
     "metrics": {"psnr": ..., "ssim": ..., "char_acc_gt": ...}, "tolerance": {"psnr": 1.0, ...}}
    {"kind": "desktop", "policy": "scripted", "episodes": 2, "seconds": 20, "seed": 4, "size": [512, 384],
     "frames": 31, "metrics": {"psnr": ..., "rollout_psnr_minus_copy_first": ..., ...}, "tolerance": {...}}
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.errors import NCError

CHECK_FILE = "check.json"
DEFAULT_TERMINAL = {"kind": "terminal", "generators": ["basic", "files", "text", "git", "python-math", "python",
                                                       "interactive"],
                    "seed": 1000, "clips": 7, "tier": "detailed",
                    "tolerance": {"psnr": 0.5, "ssim": 0.01, "char_acc_gt": 0.04}}
DEFAULT_DESKTOP = {"kind": "desktop", "policy": "scripted", "episodes": 2, "seconds": 20, "seed": 4,
                   "size": [512, 384], "frames": 31,
                   "tolerance": {"rollout_psnr_minus_copy_first": 0.3, "rollout_ssim_minus_copy_first": 0.04,
                                 "one_step_psnr_minus_copy_previous": 0.3, "one_step_ssim_minus_copy_previous": 0.015}}


# what names a check set: two specs that agree on these rebuild the same set (the other keys say how it is scored)
SET_KEYS = {"terminal": ("generators", "seed"), "desktop": ("policy", "episodes", "seconds", "seed", "size")}


def set_of(spec: dict) -> dict:
    """The part of a check ``spec`` that names its set: equal for two specs that rebuild the same one."""
    if spec["kind"] not in SET_KEYS:
        raise NCError(f"check kind {spec['kind']!r}: expected terminal or desktop")
    return {"kind": spec["kind"], **{k: spec[k] for k in SET_KEYS[spec["kind"]]}}


def check_set(spec: dict, work: str | Path) -> Path:
    """Rebuild the fresh check set ``spec`` describes under ``work`` (reused when one is there already) and
    return its folder: ``work/terminal-check`` or ``work/desktop-check``. Models whose specs name the same
    set (:func:`set_of`) can be scored on one rebuild: give each a work folder holding it."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    return _terminal_set(spec, work) if set_of(spec)["kind"] == "terminal" else _desktop_set(spec, work)


def _terminal_set(spec: dict, work: Path) -> Path:
    """Record one fresh session per generator (seed ``spec['seed']``) and render them (clean variant)."""
    from neuralcomputer.data.dataset import is_dataset
    from neuralcomputer.data.terminal.build import BuildOptions, render_dataset
    from neuralcomputer.data.terminal.recorder import record_many

    ds = work / "terminal-check"
    if is_dataset(ds):
        return ds
    for generator in spec["generators"]:
        summary = record_many(generator, 1, spec["seed"], work / "casts", progress=False)
        if summary.failed:
            raise NCError(f"check set: the {generator} session failed to record: {summary.failed[0][1]}")
    render_dataset([work / "casts"], ds, BuildOptions(variant="clean"), progress=False)
    return ds


def _score_terminal(model: Path, spec: dict, work: Path) -> dict[str, float]:
    from neuralcomputer.data.dataset import load_manifest, write_manifest
    from neuralcomputer.eval.evaluate import EvalOptions
    from neuralcomputer.eval.run import evaluate_models
    from neuralcomputer.runtime.computer import NeuralComputer

    ds = _terminal_set(spec, work)
    records = load_manifest(ds)
    firsts: dict[str, dict] = {}
    for r in records:  # the first clip of each session: it starts at a prompt, like the model's first frames
        firsts.setdefault(r["session"], r)
    chosen = sorted(firsts.values(), key=lambda r: r["id"])[: spec["clips"]]
    for r in records:
        r["split"] = "test" if r in chosen else "train"
    write_manifest(ds / "manifest.jsonl", records)
    report = evaluate_models([(str(model), NeuralComputer.load(model))], ds, work / "terminal-eval",
                             options=EvalOptions(tesseract=False), split="test", tier=spec["tier"], progress=False)
    return {"psnr": report["psnr"], "ssim": report["ssim"], "char_acc_gt": report["ocr_grid_gt"]["char_acc"],
            "line_acc_gt": report["ocr_grid_gt"]["line_acc"], "clips": report["clips"]}


def _desktop_set(spec: dict, work: Path) -> Path:
    """Collect fresh episodes on a real XFCE desktop (policy, count, length and seed of ``spec``)."""
    from neuralcomputer.data.dataset import is_dataset, load_manifest
    from neuralcomputer.data.desktop.collect import collect_desktop

    ds = work / "desktop-check"
    # the collector writes one manifest part per worker (manifest-*.jsonl); a set cut short is collected again
    if not is_dataset(ds) or len(load_manifest(ds)) < spec["episodes"]:
        summary = collect_desktop(spec["policy"], spec["episodes"], spec["seconds"], ds, seed=spec["seed"],
                                  size=tuple(spec["size"]), progress=False)
        if summary.failed:
            episode, why = next(iter(summary.failed.items()))
            raise NCError(f"check set: desktop episode {episode} could not be collected: {why[-1]}")
    return ds


def _score_desktop(model: Path, spec: dict, work: Path) -> dict[str, float]:
    from neuralcomputer.experiments.guiworld import desktop_report

    ds = _desktop_set(spec, work)
    result = desktop_report(model, ds, work / "desktop-eval", split="all", episodes=spec["episodes"],
                            frames=spec["frames"])
    row = next(iter(result["rows"].values()))
    first, previous = result["baselines"]["copy first frame"], result["baselines"]["copy previous frame"]
    # Fresh episodes differ in content (a menu opens or not), which moves every score; the margins over
    # the trivial baselines on the same episodes cancel that (measured: 0.9 dB -> 0.03 dB of spread).
    return {k: row[k] for k in ("psnr", "ssim", "tf_psnr", "tf_ssim")} | {
        "rollout_psnr_minus_copy_first": row["psnr"] - first["psnr"],
        "rollout_ssim_minus_copy_first": row["ssim"] - first["ssim"],
        "one_step_psnr_minus_copy_previous": row["tf_psnr"] - previous["psnr"],
        "one_step_ssim_minus_copy_previous": row["tf_ssim"] - previous["ssim"],
        "episodes": row["episodes"]}


def measure(model: str | Path, spec: dict, work: str | Path) -> dict[str, float]:
    """Rebuild the check set described by ``spec`` under ``work`` and score ``model`` on it."""
    model, work = Path(model), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    if spec["kind"] == "terminal":
        return _score_terminal(model, spec, work)
    if spec["kind"] == "desktop":
        return _score_desktop(model, spec, work)
    raise NCError(f"check kind {spec['kind']!r}: expected terminal or desktop")


def _check_kind(model: Path | str) -> str:
    """The check a model (directory, checkpoint or run folder) takes: ``"desktop"`` for GUIWorld, else ``"terminal"``."""
    from neuralcomputer.pipelines.cligen import resolve_model_dir

    path = resolve_model_dir(model) / "config.json"
    try:
        kind = json.loads(path.read_text()).get("kind")
    except (OSError, json.JSONDecodeError) as exc:
        raise NCError(f"{path}: not a readable model config ({exc})") from None
    return "desktop" if kind in ("guiworld", "guiworld-delta") else "terminal"


def load_check(model: str | Path) -> dict:
    """The model's ``check.json``, with one clear error when it is missing or malformed."""
    path = Path(model) / CHECK_FILE
    if not path.is_file():
        raise NCError(f"{path}: no check file (measure one with ncomp eval card --model {model} --write)")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NCError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    for key in ("kind", "metrics", "tolerance"):
        if key not in spec:
            raise NCError(f"{path}: missing key {key!r}")
    missing = [k for k in spec["tolerance"] if k not in spec["metrics"]]
    if missing:
        raise NCError(f"{path}: tolerance for {', '.join(missing)} but no metric measured")
    return spec


def check_card(model: str | Path, work: str | Path, card: str | Path | None = None) -> dict[str, Any]:
    """Score ``model`` on a rebuilt check set; ``{"ok", "rows": [{metric, expected, measured, tolerance, ok}]}``.

    ``card`` is the model directory whose ``check.json`` holds the promise (default: ``model``'s own), so
    a model retrained from a card's commands can be held to the shipped card.
    """
    spec = load_check(card if card is not None else model)
    if card is not None:  # a model's own check.json was written for it; another card's may not fit
        kind = _check_kind(model)
        if spec["kind"] != kind:
            raise NCError(f"{Path(card) / CHECK_FILE}: a {spec['kind']} check, but {model} is a {kind} model")
    t0 = time.perf_counter()
    measured = measure(model, spec, work)
    rows = []
    for key, tol in spec["tolerance"].items():
        value = measured.get(key)
        ok = value is not None and bool(np.isfinite(value)) and abs(value - spec["metrics"][key]) <= tol
        rows.append({"metric": key, "expected": spec["metrics"][key], "measured": value, "tolerance": tol, "ok": ok})
    return {"model": str(model), "kind": spec["kind"], "ok": all(r["ok"] for r in rows), "rows": rows,
            "seconds": time.perf_counter() - t0}


def write_check(model: str | Path, work: str | Path, kind: str | None = None) -> dict:
    """Measure the check set for ``model`` and write its ``check.json`` (keeping an existing tolerance)."""
    model = Path(model)
    path = model / CHECK_FILE
    if path.is_file():
        spec = json.loads(path.read_text())
    else:
        kind = kind or _check_kind(model)
        spec = json.loads(json.dumps(DEFAULT_DESKTOP if kind == "desktop" else DEFAULT_TERMINAL))
    spec["metrics"] = measure(model, spec, work)
    atomic_write_bytes(path, (json.dumps(spec, indent=2) + "\n").encode())
    return spec
