"""Cross-validated settings of DeskDelta's transition memory (``ncomp experiment desktop-recall``).

The val split of a desktop collection is a handful of episodes (3 in ``datasets/desktop``: 72
action-effect cases), too few to tell one recall setting from another: a gain of two cases is noise.
The memory needs no training, so its settings can be scored on the *training* episodes instead: for
each fold a few of them are held out, the memory is built from all the others, and every setting
replays the held-out episodes. Each fold holds out ``per_policy`` episodes of each listed policy
(fold ``k``: the ``k``-th run of them in manifest order), so the folds are disjoint and every policy
is scored. Val and held-out sets stay untouched for the final measurement.

Per setting: the action effect over all cases of all folds (as ``ncomp eval desktop-targets``
scores it) and the rollout SSIM of each held-out episode over its first 31 and 150 frames; beside
the first setting (the reference), paired differences (same case, same episode) with 95% bootstrap
intervals. Writes ``OUT/recall.json`` (every case) and ``OUT/recall.md`` (the table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.errors import NCError
from neuralcomputer.experiments.desktop_targets import bootstrap, effect_cases

ROLLOUTS = (31, 150)  # frames of each held-out episode's rollout from its first frame


def parse_setting(text: str) -> tuple[str, dict[str, Any]]:
    """``"NAME:key=value;key=value"`` -> (NAME, overrides); values are JSON (``40``, ``false``, ``[1, 2]``)
    or else strings; ``"NAME:"`` is the model's own settings."""
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise NCError(f"--setting {text!r}: expected NAME:key=value;key=value (NAME: alone for the model's own)")
    overrides: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(";"))):
        key, eq, value = part.partition("=")
        if not eq:
            raise NCError(f"--setting {text!r}: {part!r} is not key=value")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return name.strip(), overrides


def recall_cv(model: Path, data: Path, out: Path, settings: list[tuple[str, dict[str, Any]]],
              policies: list[str], folds: int = 3, per_policy: int = 3, extra: list[Path] | None = None
              ) -> dict[str, Any]:
    """Score each of ``settings`` (name, recall overrides) of ``model``'s memory on ``folds`` folds of
    ``data``'s training episodes (see the module docstring); returns and writes the result. The train
    episodes of the ``extra`` datasets join every fold's memory and are never held out (what more
    data buys)."""
    from neuralcomputer.data.desktop.actions import read_actions
    from neuralcomputer.data.desktop.episode import read_desktop_clip
    from neuralcomputer.eval.image_metrics import ssim
    from neuralcomputer.models.deskmemory import DEFAULTS, TransitionMemory
    from neuralcomputer.pipelines.deskdelta import DeskDeltaRollout
    from neuralcomputer.pipelines.load import load_pipeline
    from neuralcomputer.train.deskdelta import episode_sources, sources_memory

    if not settings:
        raise NCError("desktop-recall: no --setting to score")
    roll = load_pipeline(model, recall="alone") if (model / "memory.npz").is_file() else None
    if not isinstance(roll, DeskDeltaRollout):
        raise NCError(f"{model}: not a DeskDelta model with a transition memory (memory.npz)")
    base = roll.memory.settings
    unknown = sorted({k for _, o in settings for k in o} - set(DEFAULTS))
    if unknown:
        raise NCError(f"desktop-recall: unknown recall setting(s) {unknown}; known: {', '.join(DEFAULTS)}")
    sources = episode_sources([data], roll.model.config, out)  # (dataset, record, cache) of the train split
    train = [r for _, r, _ in sources]
    by_policy = {p: [r for r in train if r.get("policy") == p] for p in policies}
    short = {p: len(rs) for p, rs in by_policy.items() if len(rs) < folds * per_policy}
    if short:
        raise NCError(f"{data}: {folds} folds of {per_policy} need {folds * per_policy} training episodes of each "
                      f"policy; found {short}")
    held_out = [[r for p in policies for r in by_policy[p][k * per_policy:(k + 1) * per_policy]]
                for k in range(folds)]
    size = roll.size
    more = episode_sources(extra or [], roll.model.config, out)  # in every fold's memory, never held out
    effects: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in settings}
    rollouts: dict[str, list[list[float]]] = {name: [] for name, _ in settings}
    sizes = []  # transitions in each fold's memory
    for k, held in enumerate(held_out):
        ids = {r["id"] for r in held}
        memory = sources_memory([src for src in sources if src[1]["id"] not in ids] + more, size, roll.screen, base)
        sizes.append(len(memory))
        clips = []  # decoded once per fold, replayed by every setting
        for r in held:
            clip = read_desktop_clip(data / r["path"], size)
            frames = np.arange(len(clip))
            clips.append((r, clip, read_actions(data / r["actions"], float(r["fps"])), clip.frames(frames),
                          clip.frames(frames, cursor=False)))
        for name, overrides in settings:
            roll.memory = TransitionMemory(memory.arrays, {**base, **overrides})
            for r, clip, actions, shown, fbs in clips:
                cases = effect_cases(roll, r["id"], clip, actions, fbs, shown, fbs)
                effects[name] += [{**case, "fold": k} for case, _, _ in cases]
                n = min(len(clip), max(ROLLOUTS))
                pred, _ = roll.rollout(fbs[0], actions[:n])
                rollouts[name].append([ssim(pred[1:m], shown[1:m]) for m in (min(f, n) for f in ROLLOUTS)])
    result = {"model": str(model), "data": str(data), "extra_data": [str(p) for p in extra or []],
              "policies": policies, "folds": folds, "per_policy": per_policy,
              "held_out": [[r["id"] for r in held] for held in held_out], "memory_transitions": sizes, "base": base,
              "settings": {name: overrides for name, overrides in settings},
              "rows": _rows(effects, rollouts, settings[0][0]), "cases": effects, "rollouts": rollouts}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "recall.json", json.dumps(result, indent=2).encode())
    atomic_write_bytes(out / "recall.md", recall_markdown(result).encode())
    return result


def _rows(effects: dict[str, list[dict[str, Any]]], rollouts: dict[str, list[list[float]]], ref: str
          ) -> dict[str, dict[str, Any]]:
    """Per setting: action effect and rollout means, and paired differences from ``ref``."""
    rows: dict[str, dict[str, Any]] = {}
    ref_success = [float(c["success"]) for c in effects[ref]]
    ref_roll = np.asarray(rollouts[ref], np.float64)
    for name in effects:
        success = [float(c["success"]) for c in effects[name]]
        roll = np.asarray(rollouts[name], np.float64)
        row: dict[str, Any] = {"action_effect": float(np.mean(success)) if success else None,
                               "successes": int(sum(success)), "cases": len(success)}
        for j, frames in enumerate(ROLLOUTS):
            row[f"rollout{frames}_ssim"] = float(roll[:, j].mean()) if len(roll) else None
        if name != ref:
            diff = [a - b for a, b in zip(success, ref_success, strict=True)]
            row["action_effect_diff"] = [float(np.mean(diff)), bootstrap(diff)]
            for j, frames in enumerate(ROLLOUTS):
                d = list(roll[:, j] - ref_roll[:, j])
                row[f"rollout{frames}_ssim_diff"] = [float(np.mean(d)), bootstrap(d)]
        rows[name] = row
    return rows


def recall_markdown(result: dict[str, Any]) -> str:
    """The table of :func:`recall_cv`'s result."""
    names = list(result["rows"])

    def cell(row: dict[str, Any], key: str) -> str:
        if row[key] is None:
            return "-"
        value = f"{row[key]:.3f}"
        if f"{key}_diff" in row:
            mean, ci = row[f"{key}_diff"]
            value += f" ({mean:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}])" if ci else f" ({mean:+.3f})"
        return value

    held = sum(len(h) for h in result["held_out"])
    extra = "".join(f" and the train episodes of `{d}`" for d in result.get("extra_data", []))
    lines = [f"# Transition-memory settings, {result['folds']} folds of held-out training episodes",
             "",
             f"`{result['model']}` on `{result['data']}`: each fold holds out {result['per_policy']} training "
             f"episodes of each of {', '.join(result['policies'])} ({held} in all) and builds the memory from "
             f"the rest{extra}. Beside the first row: paired differences (same case, same episode), 95% "
             f"bootstrap intervals.",
             "",
             "| setting | overrides | action effect | rollout SSIM, 31 frames | rollout SSIM, 150 frames |",
             "|---|---|---|---|---|"]
    for name in names:
        row = result["rows"][name]
        overrides = ", ".join(f"{k}={json.dumps(v)}" for k, v in result["settings"][name].items()) or "(the model's)"
        lines.append(f"| {name} | {overrides} | {cell(row, 'action_effect')} ({row['successes']}/{row['cases']}) | "
                     f"{cell(row, 'rollout31_ssim')} | {cell(row, 'rollout150_ssim')} |")
    return "\n".join(lines) + "\n"


__all__ = ["parse_setting", "recall_cv", "recall_markdown"]
