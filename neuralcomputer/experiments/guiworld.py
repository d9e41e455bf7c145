"""The paper's GUIWorld ablations at tiny scale: one command per table, equal budgets, paper beside ours.

``ncomp experiment guiworld TABLE --data DATASET --out DIR [--steps N]`` trains every variant of the
table with the same preset, steps, batch, seed and tokenizer (trained once, in the first variant's
run, and shared), rolls each out on the same held-out episodes under their true actions, and writes
``DIR/TABLE.json`` and ``DIR/TABLE.md``. Runs resume: a variant whose run is done is not retrained.
``--quick`` checks the whole pipeline in a minute or two without any dataset: tiny real desktop
episodes collected on the spot (``quick_data``), a tiny model (``QUICK_OVERRIDES``), a few steps; its
table says it is no result.

Tables (the paper's numbers as our walkthrough of it gives them, ../shared/seed):

* ``injection`` -- external / contextual / residual / internal (SSIM, FVD);
* ``cursor``    -- position only / position + Fourier / mask reference (cursor accuracy);
* ``actions``   -- raw events / meta-actions (SSIM);
* ``data``      -- one dataset per policy (``--data random-slow=DS --data random-fast=DS --data scripted=DS``;
                   the paper's purposeful data came from Claude's computer-use agent, ours from the
                   scripted agent) (FVD), evaluated on ``--eval-data`` (default: the last dataset).

Metrics per variant: PSNR/SSIM over all generated frames and over the paper's "+15" frames after each
action, and the cursor hit rate (the cursor located in generated frames by masked cross-correlation,
within 2/5/10 px of the logged pointer at the model's resolution; needs the model's frames to be at
least half the screen's size, since the sprite cannot be drawn smaller). FVD needs I3D/r3d18 weights
we cannot download here: reported as unavailable, never estimated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.config import apply_overrides, preset_config
from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.errors import NCError

PAPER = {
    "injection": {"external": {"ssim": 0.746, "fvd": 33.4}, "contextual": {"ssim": 0.824, "fvd": 21.2},
                  "residual": {"ssim": 0.841, "fvd": 18.6}, "internal": {"ssim": 0.863, "fvd": 14.5}},
    "cursor": {"position": {"cursor_acc": 0.087}, "position+fourier": {"cursor_acc": 0.135},
               "mask-reference": {"cursor_acc": 0.987}},
    "actions": {"raw": {"ssim": 0.847}, "meta": {"ssim": 0.863}},
    "data": {"random-slow": {"fvd": 48.17}, "random-fast": {"fvd": 20.37}, "scripted": {"fvd": 14.72}},
}
VARIANTS: dict[str, dict[str, list[str]]] = {
    "injection": {m: [f"injection={m}"] for m in ("external", "contextual", "residual", "internal")},
    "cursor": {"position": ["coords=raw", "cursor_reference=false", "cursor_loss_weight=0.0"],
               "position+fourier": ["coords=fourier", "cursor_reference=false", "cursor_loss_weight=0.0"],
               "mask-reference": ["coords=fourier", "cursor_reference=true"]},
    "actions": {"raw": ["encoder=raw"], "meta": ["encoder=meta"]},
}
TABLES = ("injection", "cursor", "actions", "data")

# --quick: a pipeline check, not a result. Real desktop episodes at a screen XFCE still lays out
# (256x192: panel, icons and menus fit) and guiworld-tiny shrunk to seconds per step. The model sees
# the whole screen: at half of it the cursor instrument finds the ~6x10 px sprite in only 7-62% of the
# true frames (measured), at full size in 91-100%, and 256x192 still costs only seconds a variant.
QUICK_SCREEN = (256, 192)
QUICK_SECONDS = 3.0  # per episode: ~45 frames at 15 fps, a few actions
QUICK_OVERRIDES = ["height=192", "width=256", "num_layers=2", "num_attention_heads=2", "attention_head_dim=16",
                   "ffn_dim=64", "freq_dim=16", "text_dim=16", "latent_channels=8", "hidden=32", "context_frames=2",
                   "val_clips=1", "val_frames=4", "log_every=1", "sample_steps=2", "octaves=4", "max_meta=2",
                   "batch_size=2", "warmup_steps=0", "tokenizer_steps=10", "save_every=1000",
                   "threads=1"]  # tiny models run fastest on one thread, and CI runners are small
QUICK_SOURCES = ("random-slow", "random-fast", "scripted")


def _seed_in_split(policy: str, split: str) -> int:
    """The first job seed whose episode 0 lands in ``split``: the quick datasets' one episode must be
    in train (to train on) or in test (to evaluate on), and splits are a hash of the episode id."""
    from neuralcomputer.data.dataset import split_for
    from neuralcomputer.data.desktop.collect import episode_id

    return next(s for s in range(10_000) if split_for(episode_id(policy, s, 0)) == split)


def _collected(root: Path, split: str) -> bool:
    from neuralcomputer.data.dataset import is_dataset, load_manifest

    return is_dataset(root) and any(r["split"] == split for r in load_manifest(root))


def _quick_dataset(root: Path, policy: str, split: str, progress: bool) -> Path:
    """One episode of ``policy`` in ``split`` under ``root``, collected unless it is already there."""
    from neuralcomputer.data.desktop.collect import collect_desktop

    if _collected(root, split):
        return root  # an earlier quick run collected it
    summary = collect_desktop(policy, 1, QUICK_SECONDS, root, size=QUICK_SCREEN, seed=_seed_in_split(policy, split),
                              progress=progress)
    if not summary.collected:
        faults = "; ".join(f for fs in summary.failed.values() for f in fs) or "no episode recorded"
        raise NCError(f"--quick: collecting a {policy} desktop episode into {root} failed: {faults}")
    return root


def quick_data(table: str, out: Path, progress: bool = True) -> tuple[dict[str, Path], Path]:
    """Tiny real desktop datasets for ``--quick``, under ``out/quick-data`` (reused when already there).

    One 3-second training episode per source for the ``data`` table (random-slow, random-fast,
    scripted), else one scripted episode; and a held-out scripted episode in the test split to score
    every variant on. Returns ``(datasets by name, eval dataset)``. Collecting needs Xvfb and XFCE.
    """
    import shutil

    root = out / "quick-data"
    wanted = [(root / s, s, "train") for s in (QUICK_SOURCES if table == "data" else ("scripted",))]
    wanted.append((root / "eval", "scripted", "test"))
    missing = [p for p in ("Xvfb", "xfce4-session", "dbus-daemon") if not shutil.which(p)]
    if missing and not all(_collected(path, split) for path, _, split in wanted):
        raise NCError(f"--quick collects real desktop episodes and needs {', '.join(missing)} "
                      "(make setup installs them); or pass --data")
    data = {policy: _quick_dataset(path, policy, split, progress) for path, policy, split in wanted[:-1]}
    return data, _quick_dataset(*wanted[-1], progress)


def _eval_episodes(data: Path, split: str, count: int) -> list[dict]:
    from neuralcomputer.data.dataset import load_manifest

    records = [r for r in load_manifest(data) if split in ("all", r["split"]) and "actions" in r]
    if not records:
        raise NCError(f"{data}: no desktop episodes in the {split} split to evaluate on")
    return records[:count]


def evaluate_run(run: Path, data: Path, records: list[dict], frames: int, seed: int = 0) -> dict[str, Any]:
    """Roll a run out on ``records`` (first ``frames`` frames each, true actions) and score it."""
    from neuralcomputer.data.desktop.actions import action_times
    from neuralcomputer.data.desktop.cursor import cursor_sprite
    from neuralcomputer.data.desktop.episode import episode_cursor_scale, load_bare_episode, load_episode
    from neuralcomputer.eval.gui import cursor_hit_rate, plus15_scores
    from neuralcomputer.pipelines.deskdelta import DeskDeltaRollout
    from neuralcomputer.pipelines.load import load_pipeline
    from neuralcomputer.train.common import frame_scores

    roll = load_pipeline(run)
    h, w = roll.size
    sw, _ = roll.screen
    scale = w / sw
    # DeskDelta keeps cursor-free framebuffers: it starts from (and is teacher-forced on) those
    bare = isinstance(roll, DeskDeltaRollout)
    per: dict[str, list[float]] = {}
    hits: dict[str, dict[int, list[float]]] = {"": {}, "tf_": {}}
    seconds = 0.0
    for i, r in enumerate(records):
        if bare:  # teacher-forced on the bare framebuffers, scored against frames with the arrow
            teacher, ref, actions = load_bare_episode(data, r, frames, (h, w))
        else:
            teacher, ref, actions = load_episode(data, r, frames, (h, w), cursor="screen")
        start = teacher[0] if bare else ref[0]
        # the arrow as this episode's frames show it (read-size for DeskDelta, else shrunk with the frame)
        sprite = cursor_sprite(episode_cursor_scale(r, w) if bare else scale)
        pred, timings = roll.rollout(start, actions, seed=seed + i)
        seconds += timings.context + timings.denoise + timings.decode
        # "tf_": teacher-forced, every frame from the true previous ones: one-step quality without drift
        forced, _ = roll.rollout(start, actions, seed=seed + i, true_frames=teacher)
        for prefix, clip in (("", pred), ("tf_", forced)):
            for key, value in frame_scores(clip[1:], ref[1:], text=False).items():
                per.setdefault(f"{prefix}{key}", []).append(value)
            p15 = plus15_scores(clip, ref, action_times(actions), float(r["fps"]))
            if p15["psnr"] is not None:
                per.setdefault(f"{prefix}plus15_psnr", []).append(min(p15["psnr"], 99.0))
                per.setdefault(f"{prefix}plus15_ssim", []).append(p15["ssim"])
            if scale >= 0.5:
                pointer = np.asarray([a.pointer for a in actions], np.float64)[1:] * scale
                for radius, rate in cursor_hit_rate(clip[1:], pointer, sprite, radii=(2, 5, 10)).items():
                    hits[prefix].setdefault(radius, []).append(rate)
        # the same instrument on the true frames: its ceiling at this resolution
        if scale >= 0.5 and i == 0:
            pointer = np.asarray([a.pointer for a in actions], np.float64)[1:] * scale
            per.setdefault("cursor_hit_ceiling_5px", []).append(
                cursor_hit_rate(ref[1:], pointer, sprite, radii=(5,))[5])
    out: dict[str, Any] = {k: (float(np.mean(v)) if v else None) for k, v in per.items()}
    for key in ("psnr", "ssim", "plus15_psnr", "plus15_ssim", "tf_psnr", "tf_ssim", "tf_plus15_psnr", "tf_plus15_ssim"):
        out.setdefault(key, None)
    for prefix in ("", "tf_"):
        out[f"{prefix}cursor_hit"] = ({str(k): float(np.mean(v)) for k, v in hits[prefix].items()}
                                     if hits[prefix] else None)
    if not hits[""]:
        out["cursor_hit_reason"] = (f"model frames are {scale:.2f}x the screen; the cursor sprite is drawn at "
                                    ">= 0.5x (collect at most twice the model's size)")
    out["fvd"] = None
    out["fvd_reason"] = "needs video-network weights (r3d18) that cannot be downloaded here"
    out["episodes"], out["frames_per_episode"] = len(records), frames
    out["rollout_frames_per_s"] = (len(records) * (frames - 1)) / max(seconds, 1e-9)
    return out


def baselines(data: Path, records: list[dict], frames: int, size: tuple[int, int], cursor: str = "screen"
              ) -> dict[str, dict[str, float]]:
    """Trivial predictors on the same episodes: copy the first frame (for rollouts) and copy the previous
    frame (for one-step prediction). A model below them has not learned the desktop's dynamics yet.
    ``cursor``: how the frames show the cursor (as the model scored beside them sees it)."""
    from neuralcomputer.data.desktop.actions import action_times
    from neuralcomputer.data.desktop.episode import load_episode
    from neuralcomputer.eval.gui import plus15_scores
    from neuralcomputer.train.common import frame_scores

    scores: dict[str, dict[str, list[float]]] = {"copy first frame": {}, "copy previous frame": {}}
    for r in records:
        _, ref, actions = load_episode(data, r, frames, size, cursor)
        times = action_times(actions)
        guesses = {"copy first frame": np.repeat(ref[:1], len(ref), 0),
                   "copy previous frame": np.concatenate([ref[:1], ref[:-1]])}
        for name, clip in guesses.items():
            p15 = plus15_scores(clip, ref, times, float(r["fps"]))
            for key, value in (*frame_scores(clip[1:], ref[1:], text=False).items(),
                               ("plus15_psnr", p15["psnr"]), ("plus15_ssim", p15["ssim"])):
                if value is not None:
                    scores[name].setdefault(key, []).append(float(value))
    return {name: {k: float(np.mean(v)) for k, v in s.items()} for name, s in scores.items()}


def _scored_rows(path: Path, eval_data: Path, split: str, episodes: int, frames: int) -> dict[str, dict]:
    """The rows of an earlier ``TABLE.json`` scored on the same episodes, each with the time it was written
    (``_scored_at``): a row whose run has not finished since is reused, not rolled out again (rollouts are
    deterministic), so a table resumed or repeated over seeds re-scores only what changed."""
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # unreadable: score everything again
    if old.get("eval_data") != str(eval_data) or old.get("eval_split") != split:
        return {}
    when = path.stat().st_mtime
    return {name: {**row, "_scored_at": when} for name, row in old.get("rows", {}).items()
            if row.get("episodes") == episodes and row.get("frames_per_episode") == frames}


def run_table(table: str, data: dict[str, Path], out: Path, steps: int, overrides: list[str], eval_data: Path | None,
              eval_split: str = "test", eval_episodes: int = 4, eval_frames: int = 31, preset: str = "guiworld-tiny",
              progress: bool = True, quick: bool = False) -> dict[str, Any]:
    """Train and score every variant of ``table``; writes ``out/TABLE.json`` and ``out/TABLE.md``.

    ``quick``: only marks the result as a pipeline check (``--quick``: tiny data and model, a few steps)."""
    from neuralcomputer.train.loop import DONE, train

    if table not in TABLES:
        raise NCError(f"unknown table {table!r}: expected one of {', '.join(TABLES)}")
    if table == "data":
        if len(data) < 2:
            raise NCError("the data table needs one dataset per source: --data random-slow=DS --data scripted=DS ...")
        variants = {name: [] for name in data}
    else:
        if len(data) != 1:
            raise NCError(f"the {table} table trains every variant on one dataset (one --data)")
        variants = VARIANTS[table]
    eval_root = eval_data or list(data.values())[-1]
    records = _eval_episodes(eval_root, eval_split, eval_episodes)
    out.mkdir(parents=True, exist_ok=True)
    scored = _scored_rows(out / f"{table}.json", eval_root, eval_split, len(records), eval_frames)
    rows: dict[str, Any] = {}
    tokenizer: Path | None = None
    for name, extra in variants.items():
        dataset = data[name] if table == "data" else next(iter(data.values()))
        cfg = apply_overrides(preset_config(preset), overrides + extra
                              + ([f"model.tokenizer.path={tokenizer}"] if tokenizer else []))
        cfg["train"]["steps"] = steps
        run = out / "runs" / name
        if not (run / DONE).is_file():
            train(cfg, dataset, run, progress=progress)
        if tokenizer is None and (run / "tokenizer" / "model").is_dir():
            tokenizer = (run / "tokenizer" / "model").resolve()  # one tokenizer for every variant
        if name in scored and (run / DONE).stat().st_mtime <= scored[name]["_scored_at"]:
            rows[name] = {k: v for k, v in scored[name].items() if k != "_scored_at"}  # same run, same episodes
            continue
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        losses = [m["loss"] for m in metrics if "loss" in m]
        rows[name] = {"overrides": extra, "data": str(dataset), "final_loss": float(np.mean(losses[-10:])),
                      **evaluate_run(run, eval_root, records, eval_frames), "paper": PAPER[table].get(name, {})}
    size = apply_overrides(preset_config(preset), overrides)["model"]
    result = {"table": table, "quick": quick, "preset": preset, "steps": steps, "overrides": overrides,
              "eval_data": str(eval_root), "eval_split": eval_split, "rows": rows,
              "baselines": baselines(eval_root, records, eval_frames, (size["height"], size["width"]))}
    atomic_write_bytes(out / f"{table}.json", json.dumps(result, indent=2).encode())
    atomic_write_bytes(out / f"{table}.md", markdown_table(result).encode())
    return result


# What a repeat over seeds compares: the rollout (the paper's protocol) and the one-step scores.
SEED_METRICS = {"rollout SSIM": "ssim", "rollout PSNR": "psnr", "one-step SSIM": "tf_ssim", "one-step PSNR": "tf_psnr"}


def seed_summary(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """How far a table's differences stand above seed noise, from ``run_table`` results at several seeds.

    Per variant and metric: the value at each seed and its spread (max - min over seeds). Per variant
    after the first (the reference): its paired difference from the reference at each seed;
    ``same_sign``: the differences share one sign at every seed (weak evidence: with two seeds, noise
    alone does that half the time); ``separated``: besides, the smallest of them exceeds the larger of
    the two variants' own seed spreads. With two or three seeds this is a coarse test; it can say a
    difference is *not* above noise, and only tentatively that one is.
    """
    seeds = sorted(per_seed)
    names = list(per_seed[seeds[0]]["rows"])
    for s in seeds[1:]:
        if list(per_seed[s]["rows"]) != names:
            raise NCError(f"seed {s}: variants {list(per_seed[s]['rows'])} differ from seed {seeds[0]}'s {names}")
    reference = names[0]

    def values(name: str, key: str) -> list[float]:
        return [float(per_seed[s]["rows"][name][key]) for s in seeds]

    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        rows[name] = {}
        for label, key in SEED_METRICS.items():
            v = values(name, key)
            entry: dict[str, Any] = {"values": v, "mean": float(np.mean(v)), "spread": float(max(v) - min(v))}
            if name != reference:
                ref = values(reference, key)
                diffs = [a - b for a, b in zip(v, ref, strict=True)]
                noise = max(entry["spread"], max(ref) - min(ref))
                same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
                entry.update(diff=diffs, diff_mean=float(np.mean(diffs)), same_sign=bool(len(seeds) > 1 and same_sign),
                             separated=bool(len(seeds) > 1 and same_sign and min(abs(d) for d in diffs) > noise))
            rows[name][label] = entry
    first = per_seed[seeds[0]]
    return {"table": first["table"], "quick": first.get("quick", False), "preset": first["preset"],
            "steps": first["steps"], "seeds": seeds, "reference": reference, "eval_data": first["eval_data"],
            "rows": rows}


def seed_markdown(summary: dict[str, Any]) -> str:
    """The repeat over seeds as Markdown: each variant at each seed, its difference from the reference."""
    seeds, ref = summary["seeds"], summary["reference"]
    title = (f"GUIWorld ablation over seeds: {summary['table']} ({summary['preset']}, {summary['steps']} steps each, "
             f"seeds {', '.join(map(str, seeds))})")
    lines = [f"# {'QUICK PIPELINE CHECK, not a result: ' if summary['quick'] else ''}{title}", "",
             f"| variant | metric | {' | '.join(f'seed {s}' for s in seeds)} | seed spread | minus {ref}, per seed | "
             "above seed noise? |", "|---|---|" + "---|" * (len(seeds) + 3)]
    for name, metrics in summary["rows"].items():
        for label, e in metrics.items():
            digits = 2 if "PSNR" in label else 3
            per = " | ".join(_fmt(v, digits) for v in e["values"])
            if name == ref:
                diff, verdict = "(reference)", "-"
            else:
                diff = " / ".join(f"{d:+.{digits}f}" for d in e["diff"])
                verdict = "**yes**" if e["separated"] else "same sign, within noise" if e["same_sign"] else "no"
            lines.append(f"| {name} | {label} | {per} | {_fmt(e['spread'], digits)} | {diff} | {verdict} |")
    lines += ["", f"Each seed trains every variant of the table (same preset, steps and data; the seed also drives "
              "the tokenizer's training unless `model.tokenizer.path` shares one) and scores it on the same "
              f"held-out episodes of {summary['eval_data']}. *Seed spread*: max - min of the variant's score over "
              f"seeds. *Above seed noise*: the difference from {ref} has the same sign at every seed and its "
              "smallest size exceeds both variants' seed spreads; *same sign, within noise*: the sign agrees at "
              "every seed but the size does not clear the spread (weak: with two seeds, noise alone agrees in "
              "sign half the time). "
              f"With {len(seeds)} seeds this is a coarse test: a *no* is informative, a *yes* is tentative."]
    return "\n".join(lines) + "\n"


def run_seeds(table: str, seeds: list[int], data: dict[str, Path], out: Path, steps: int, overrides: list[str],
              eval_data: Path | None, **kwargs: Any) -> dict[str, Any]:
    """``run_table`` once per seed (in ``out/seed-K``), then ``out/TABLE-seeds.json`` and ``.md`` (``seed_summary``)."""
    if len(set(seeds)) < 2:
        raise NCError(f"--seeds {','.join(map(str, seeds))}: a repeat over seeds needs at least two different seeds")
    per_seed = {s: run_table(table, data, out / f"seed-{s}", steps, overrides + [f"seed={s}"], eval_data, **kwargs)
                for s in dict.fromkeys(seeds)}
    summary = seed_summary(per_seed)
    atomic_write_bytes(out / f"{table}-seeds.json", json.dumps(summary, indent=2).encode())
    atomic_write_bytes(out / f"{table}-seeds.md", seed_markdown(summary).encode())
    return summary


def desktop_report(model: Path, data: Path, out: Path, split: str = "test", episodes: int = 4, frames: int = 31,
                   seed: int = 0) -> dict[str, Any]:
    """Score one GUIWorld model on desktop episodes beside the trivial baselines (``ncomp eval desktop``).

    Rollouts from each episode's first frame under its true actions and one-step predictions, as the
    ablation tables score them; writes ``out/report.json`` and ``out/report.md``.
    """
    from neuralcomputer.pipelines.cligen import resolve_model_dir

    cfg = json.loads((resolve_model_dir(model) / "config.json").read_text())
    if cfg.get("kind") not in ("guiworld", "guiworld-delta"):
        raise NCError(f"{model}: not a GUIWorld (desktop) model; score terminal models with ncomp eval --model")
    size = (cfg["model"]["height"], cfg["model"]["width"])
    records = _eval_episodes(data, split, episodes)
    row = {"final_loss": None, **evaluate_run(model, data, records, frames, seed),
           "paper": PAPER["injection"]["internal"]}
    result = {"title": f"GUIWorld evaluation: {model}", "model": str(model), "eval_data": str(data),
              "eval_split": split, "rows": {Path(model).name: row},
              "baselines": baselines(data, records, frames, size, "read" if cfg["kind"] == "guiworld-delta" else "screen")}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "report.json", json.dumps(result, indent=2).encode())
    atomic_write_bytes(out / "report.md", markdown_table(result).encode())
    return result


def _fmt(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def markdown_table(result: dict[str, Any]) -> str:
    """The table as Markdown: our figures, the paper's beside them, and the caveats."""
    title = result.get("title") or f"GUIWorld ablation: {result['table']} ({result['preset']}, {result['steps']} steps each)"
    if result.get("quick"):
        title = f"QUICK PIPELINE CHECK, not a result: {title}"
    lines = [f"# {title}", ""]
    if result.get("quick"):
        lines += ["**Quick run (--quick): a pipeline check on tiny data with a tiny model trained for a few steps. "
                  "These figures are not a result.**", ""]
    lines += ["| variant | final loss | mode | PSNR | SSIM | +15 PSNR | +15 SSIM | cursor hit @2/5/10 px | FVD | paper |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        paper = ", ".join(f"{k} {v}" for k, v in r["paper"].items()) or "-"
        for prefix, mode in (("tf_", "one-step"), ("", "rollout")):
            hits = r[f"{prefix}cursor_hit"]
            hit = "/".join(_fmt(hits[k], 2) for k in ("2", "5", "10")) if hits else "n/a"
            lines.append(f"| {name} | {_fmt(r['final_loss'])} | {mode} | {_fmt(r[prefix + 'psnr'], 2)} | "
                         f"{_fmt(r[prefix + 'ssim'])} | {_fmt(r[prefix + 'plus15_psnr'], 2)} | "
                         f"{_fmt(r[prefix + 'plus15_ssim'])} | {hit} | n/a | {paper} |")
    for name, r in result.get("baselines", {}).items():
        mode = "rollout" if name == "copy first frame" else "one-step"
        lines.append(f"| *baseline: {name}* | - | {mode} | {_fmt(r.get('psnr'), 2)} | {_fmt(r.get('ssim'))} | "
                     f"{_fmt(r.get('plus15_psnr'), 2)} | {_fmt(r.get('plus15_ssim'))} | - | - | - |")
    any_row = next(iter(result["rows"].values()))
    lines += ["", f"Evaluated on {any_row['episodes']} {result['eval_split']} episodes of {result['eval_data']}, "
              f"first {any_row['frames_per_episode']} frames. *rollout*: generated from the first frame under the "
              "true actions (the paper's protocol); *one-step*: each frame predicted from the true previous frames "
              "(no drift: what a short training run can show). Cursor hit rate of the true frames with the same "
              f"instrument (its ceiling): {_fmt(any_row.get('cursor_hit_ceiling_5px'), 2)} at 5 px.",
              "", "Caveats: tiny models trained for minutes on one CPU against the paper's Wan2.1 fine-tuned on "
              "hundreds of GPU hours; every variant has the same budget, seed and tokenizer; differences of a "
              "few hundredths are within run-to-run noise at this scale. FVD: "
              f"{any_row['fvd_reason']}. Cursor accuracy in the paper is its own measure; ours is the hit rate "
              "of the located cursor sprite."]
    return "\n".join(lines) + "\n"
