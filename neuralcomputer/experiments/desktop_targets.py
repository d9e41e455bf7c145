"""Issue 17's targets for a desktop model, each beside its trivial baseline (``ncomp eval desktop-targets``).

On held-out episodes (cursor-free recordings, ``"cursor_at_read"``):

* **instrument**: the cursor locator on the *true* frames at the model's size, within 2 px (its ceiling);
* **one step** (teacher-forced: each frame from the true ones before it): PSNR, SSIM and ``changed_psnr``
  (PSNR over the pixels where the true frame differs from the previous one) beside copy-previous-frame;
* **rollout** under the true actions for the first 31 and 150 frames: SSIM beside copy-first-frame,
  and the cursor hit rate at 5 px of the generated frames; the 150th frame is saved beside the truth;
* **action effect**: for each click, key or typed text after which the true framebuffer changes within
  15 frames, a 15-frame rollout from the true screen at the action; a success when the model's frame
  15 later is closer (SSIM over the box that changed) to the true one than the frame before it is,
  that frame's cursor moved to where it is 15 frames later (so a drawn cursor earns nothing here).
  The four successes and failures with the largest changes are drawn (before | truth | model, 15
  frames later) in ``effects-success.png`` and ``effects-failure.png``.

Intervals: 95% bootstrap over episodes (over actions for the action effect), 2,000 resamples. A PSNR
of identical frames counts as 60 dB (``PSNR_CAP``) rather than being dropped from the mean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.errors import NCError

EFFECT_FRAMES = 15
EFFECT_METAS = ("click", "key", "type")
MIN_CHANGED_PX = 32  # a change smaller than this (a blinking caret) is not "the screen answered"
EFFECT_FIGURE_ROWS = 4  # action-effect cases drawn per outcome, largest change first (effects-*.png)
PSNR_CAP = 60.0  # dB for identical 8-bit frames (VMAF caps its 8-bit PSNR at 60 dB too)


def bootstrap(values: list[float], seed: int = 0, n: int = 2000) -> list[float] | None:
    """95% percentile interval of the mean, or None with fewer than two values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) < 2:
        return None
    means = v[np.random.default_rng(seed).integers(len(v), size=(n, len(v)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def _capped(value: float | None) -> float | None:
    """A PSNR with identical frames (``inf``) counted as :data:`PSNR_CAP` instead of dropped: an episode
    predicted exactly must raise the mean, not leave it."""
    return None if value is None else min(float(value), PSNR_CAP)


def _summary(values: list[float]) -> dict[str, Any]:
    finite = [x for x in values if x is not None and np.isfinite(x)]
    return {"mean": float(np.mean(finite)) if finite else None, "ci95": bootstrap(finite), "n": len(finite)}


def effect_cases(roll: Any, episode: str, clip: Any, actions: list, start: np.ndarray, shown: np.ndarray,
                 fbs: np.ndarray) -> list[tuple[dict[str, Any], int, np.ndarray]]:
    """The action-effect cases of one episode (see the module docstring): for each, the case record,
    the area of the box that changed and the figure row ``(H, 3W, 3)`` before | truth | model.

    ``roll`` is a loaded desktop pipeline, ``clip`` the episode at its size, ``actions`` its records,
    ``start`` ``(T, H, W, 3)`` the frames each rollout starts from (cursor-free for DeskDelta), ``shown``
    and ``fbs`` ``(T, H, W, 3)`` the clip's frames with and without the cursor (decoded once by the caller)."""
    from neuralcomputer.data.desktop.cursor import composite_cursor
    from neuralcomputer.eval.gui import changed_box
    from neuralcomputer.eval.image_metrics import ssim

    out = []
    for f, a in enumerate(actions[: len(clip) - EFFECT_FRAMES]):
        if not any(m["type"] in EFFECT_METAS for m in a.meta):
            continue
        box = changed_box(fbs[f], fbs[f + EFFECT_FRAMES])
        if box is None or np.any(fbs[f] != fbs[f + EFFECT_FRAMES], axis=-1).sum() < MIN_CHANGED_PX:
            continue
        rolled, _ = roll.rollout(start[f], actions[f: f + EFFECT_FRAMES + 1])
        rows, cols = box
        # the frame before the action, its cursor moved to where it is 15 frames later: what a cursor
        # compositor alone would show, so the cursor itself earns the model nothing here
        before = composite_cursor(fbs[f], *clip.pointer[f + EFFECT_FRAMES], clip.sprite)
        after, before, truth = rolled[-1][rows, cols], before[rows, cols], shown[f + EFFECT_FRAMES][rows, cols]
        s_model, s_before = ssim(after[None], truth[None]), ssim(before[None], truth[None])
        case = {"episode": episode, "frame": f, "type": [m["type"] for m in a.meta],
                "model_ssim": s_model, "before_ssim": s_before, "success": bool(s_model > s_before)}
        area = (rows.stop - rows.start) * (cols.stop - cols.start)
        out.append((case, area, np.concatenate([shown[f], shown[f + EFFECT_FRAMES], rolled[-1]], axis=1)))
    return out


def targets_report(model: Path, data: Path, out: Path, split: str = "test", episodes: int = 8,
                   long_frames: int = 150, short_frames: int = 31, recall: str | None = None) -> dict[str, Any]:
    """Score ``model`` on up to ``episodes`` episodes of ``split``; writes ``out/targets.json`` and the
    150th-frame figure ``out/rollout-150.png``. Returns the result. ``recall`` overrides a DeskDelta
    model's recall mode (``"off"``: its network alone, whatever memory the directory holds)."""
    from PIL import Image

    from neuralcomputer.data.dataset import load_manifest
    from neuralcomputer.data.desktop.actions import read_actions
    from neuralcomputer.data.desktop.cursor import composite_cursor
    from neuralcomputer.data.desktop.episode import read_desktop_clip
    from neuralcomputer.eval.gui import changed_psnr, cursor_hit_rate
    from neuralcomputer.eval.image_metrics import psnr, ssim
    from neuralcomputer.pipelines.deskdelta import DeskDeltaRollout
    from neuralcomputer.pipelines.load import load_pipeline

    roll = load_pipeline(model, **({"recall": recall} if recall else {}))
    bare = isinstance(roll, DeskDeltaRollout)  # starts from cursor-free screenshots
    size = roll.size
    records = [r for r in load_manifest(data) if split in ("all", r["split"]) and r.get("cursor_at_read")]
    if not records:
        raise NCError(f"{data}: no cursor-free desktop episodes in the {split} split (collect with this version)")
    records = records[:episodes]
    per: dict[str, list[float]] = {}
    effects: list[dict[str, Any]] = []
    cases: list[tuple[bool, int, np.ndarray]] = []  # (success, changed area, before | truth | model)
    figure = None

    def add(key: str, value: float | None) -> None:
        per.setdefault(key, []).append(value)

    for r in records:
        clip = read_desktop_clip(data / r["path"], size)
        actions = read_actions(data / r["actions"], float(r["fps"]))
        n = min(len(clip), long_frames)
        shown = clip.frames(np.arange(len(clip)))                 # (T, H, W, 3) the true screen, cursor in
        fbs = clip.frames(np.arange(len(clip)), cursor=False)    # the true framebuffers
        start = fbs if bare else shown
        add("instrument_2px", cursor_hit_rate(shown, clip.pointer, clip.sprite, radii=(2,))[2])
        # one step, teacher-forced, over the long window
        forced, _ = roll.rollout(start[0], actions[:n], true_frames=start[:n])
        add("onestep_psnr", _capped(psnr(forced[1:], shown[1:n])))
        add("onestep_ssim", ssim(forced[1:], shown[1:n]))
        add("copyprev_psnr", _capped(psnr(shown[: n - 1], shown[1:n])))
        add("copyprev_ssim", ssim(shown[: n - 1], shown[1:n]))
        add("onestep_changed_psnr", _capped(changed_psnr(forced[1:], shown[1:n], shown[: n - 1])))
        add("copyprev_changed_psnr", _capped(changed_psnr(shown[: n - 1], shown[1:n], shown[: n - 1])))
        # the cursor compositor alone: the previous framebuffer with the arrow at the new pointer
        moved = np.stack([composite_cursor(fbs[t - 1], *clip.pointer[t], clip.sprite) for t in range(1, n)])
        add("compositor_psnr", _capped(psnr(moved, shown[1:n])))
        add("compositor_ssim", ssim(moved, shown[1:n]))
        add("compositor_changed_psnr", _capped(changed_psnr(moved, shown[1:n], shown[: n - 1])))
        # free rollouts
        pred, _ = roll.rollout(start[0], actions[:n])
        for frames, name in ((short_frames, "31"), (long_frames, "150")):
            m = min(frames, n)
            add(f"rollout{name}_ssim", ssim(pred[1:m], shown[1:m]))
            add(f"copyfirst{name}_ssim", ssim(np.repeat(shown[:1], m - 1, 0), shown[1:m]))
            first = [composite_cursor(fbs[0], *clip.pointer[t], clip.sprite) for t in range(1, m)]
            add(f"compositor{name}_ssim", ssim(np.stack(first), shown[1:m]))
        add("rollout_cursor_hit_5px", cursor_hit_rate(pred[1:], clip.pointer[1:n], clip.sprite, radii=(5,))[5])
        if figure is None and n >= long_frames:
            figure = np.concatenate([pred[n - 1], shown[n - 1], shown[0]], axis=1)  # model | truth | first
        # action effect over the whole episode
        for case, area, image in effect_cases(roll, r["id"], clip, actions, start, shown, fbs):
            effects.append(case)
            cases.append((case["success"], area, image))
    success = [float(x["success"]) for x in effects]
    result: dict[str, Any] = {
        "model": str(model), "data": str(data), "split": split, "episodes": [r["id"] for r in records],
        "frames": {"short": short_frames, "long": long_frames}, "model_kind": type(roll).__name__,
        "metrics": {k: _summary(v) for k, v in per.items()},
        "per_episode": per,  # one value per episode, in the order of "episodes" (for paired comparisons)
        "action_effect": {"success_rate": float(np.mean(success)) if success else None,
                          "ci95": bootstrap(success), "n": len(effects), "cases": effects},
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "targets.json", json.dumps(result, indent=2).encode())
    if figure is not None:
        Image.fromarray(figure).save(out / "rollout-150.png")
    for success, name in ((True, "effects-success.png"), (False, "effects-failure.png")):
        # the largest changes of each outcome (menus and windows, not a highlighted icon)
        rows = [img for ok, _, img in sorted(cases, key=lambda c: -c[1]) if ok == success][:EFFECT_FIGURE_ROWS]
        if rows:
            Image.fromarray(np.concatenate(rows, axis=0)).save(out / name)
    return result


def targets_markdown(result: dict[str, Any]) -> str:
    """The report as a Markdown table: each figure, its interval, the baseline beside it."""
    m = result["metrics"]

    def cell(key: str, digits: int = 3) -> str:
        s = m.get(key)
        if not s or s["mean"] is None:
            return "n/a"
        ci = f" [{s['ci95'][0]:.{digits}f}, {s['ci95'][1]:.{digits}f}]" if s["ci95"] else ""
        return f"{s['mean']:.{digits}f}{ci}"

    eff = result["action_effect"]
    rate = "n/a" if eff["success_rate"] is None else f"{eff['success_rate']:.3f}"
    ci = f" [{eff['ci95'][0]:.3f}, {eff['ci95'][1]:.3f}]" if eff["ci95"] else ""
    short, long = result["frames"]["short"], result["frames"]["long"]
    rows = [
        ("cursor instrument on true frames, within 2 px", cell("instrument_2px"), "-", "-", ">= 0.99"),
        ("one step PSNR (dB)", cell("onestep_psnr", 2), cell("copyprev_psnr", 2), cell("compositor_psnr", 2),
         ">= copy-previous"),
        ("one step SSIM", cell("onestep_ssim"), cell("copyprev_ssim"), cell("compositor_ssim"), ">= copy-previous"),
        ("one step changed_psnr (dB)", cell("onestep_changed_psnr", 2), cell("copyprev_changed_psnr", 2),
         cell("compositor_changed_psnr", 2), ">= copy-previous + 3 dB"),
        (f"rollout SSIM, {short} frames", cell("rollout31_ssim"), cell("copyfirst31_ssim"), cell("compositor31_ssim"),
         ">= copy-first + 0.03"),
        (f"rollout SSIM, {long} frames", cell("rollout150_ssim"), cell("copyfirst150_ssim"),
         cell("compositor150_ssim"), ">= copy-first + 0.03"),
        ("rollout cursor hit rate at 5 px", cell("rollout_cursor_hit_5px"), "-", "-", ">= 0.95"),
        (f"action effect ({eff['n']} clicks/keys that change the screen)", rate + ci, "-", "0 (by construction)",
         ">= 0.80"),
    ]
    lines = [f"# Desktop targets: {result['model']}", "",
             f"{len(result['episodes'])} {result['split']} episodes of `{result['data']}`; 95% bootstrap intervals "
             "over episodes (over actions for the action effect).", "",
             "*copy*: copy-previous-frame (one step) or copy-first-frame (rollout). *compositor*: the same, but the "
             "framebuffer alone, with the arrow drawn at the true pointer: what the cursor compositor gives with no "
             "model at all; the learned part of a model is what it adds to this.", "",
             "| metric | model | copy | compositor | target |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    return "\n".join(lines) + "\n"
