"""DeskDelta's levers, each switched off at equal budget, at several seeds (``ncomp experiment desktop-levers``).

Every variant trains ``steps`` steps of the ``guiworld-delta`` preset with one override, for each seed,
and is scored by the targets report on the same held-out episodes: the design's own levers, and the
paper's injection, actions (raw vs meta) and cursor tables re-run on this design. Two more rows put
the training episodes' transition memory beside the full design's network (the bundled model recalls
alone; ``memory over network`` pastes a recalled change over the network's frame); pass
``mode=off`` so that the trained variants are scored as networks. The table gives each variant's
mean over seeds and episodes and its paired difference from the full design (same seed, same
episode) with a 95% bootstrap interval: a lever earns its place when the interval excludes zero.

Runs and reports are reused when present (``OUT/<variant>/seed-<s>/run`` with ``done.json``, and
``.../targets/targets.json``), so an interrupted table resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.errors import NCError
from neuralcomputer.experiments.desktop_targets import bootstrap
from neuralcomputer.pipelines.deskdelta import MEMORY_FILE

# variant -> the overrides that switch one lever off (the full design has none). Grouped: the design's
# own levers, then the paper's three GUIWorld tables on this design (models/deskdelta.py docstring):
# where the action vector enters, raw events or meta-actions, and who draws the cursor.
VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no copy prior": ["copy_prior=false"],
    "no change curriculum": ["changed_boost=1.0"],
    "input history 1 step": ["history=1"],
    "no coarse attention": ["attention=false"],
    "no covered-frame input": ["memory=0"],
    "injection external": ["injection=external"],
    "injection contextual": ["injection=contextual"],
    "injection residual": ["injection=residual"],
    "meta-actions": ["actions=meta"],
    "cursor drawn, mask reference": ["cursor=mask"],
    "cursor drawn, position": ["cursor=position"],
    "cursor drawn, position + Fourier": ["cursor=fourier"],
}
# variant -> recall settings: the full design's trained network with the training episodes' transition
# memory beside it (no training of its own; the memory does not depend on the seed, the network does)
RECALL_VARIANTS: dict[str, dict[str, Any]] = {
    "memory alone (bundled design)": {"mode": "alone"},
    "memory alone, no typing": {"mode": "alone", "typing": False},
    "memory over network": {"mode": "over-network"},
}
# metric key in the targets report -> column title
COLUMNS = {
    "onestep_changed_psnr": "one-step changed_psnr (dB)",
    "onestep_psnr": "one-step PSNR (dB)",
    "rollout31_ssim": "rollout SSIM, 31 frames",
    "rollout150_ssim": "rollout SSIM, 150 frames",
    "action_effect": "action effect",
    "rollout_cursor_hit_5px": "cursor hit at 5 px",
}


def _per_episode(report: dict[str, Any]) -> dict[str, list[float]]:
    """Metric -> per-episode values; the action effect as a per-episode success rate."""
    out = {k: list(report["per_episode"].get(k, [])) for k in COLUMNS if k != "action_effect"}
    by_episode: dict[str, list[float]] = {e: [] for e in report["episodes"]}
    for case in report["action_effect"]["cases"]:
        by_episode[case["episode"]].append(float(case["success"]))
    out["action_effect"] = [float(np.mean(v)) if v else float("nan") for v in by_episode.values()]
    return out


def run_levers(data: Path, eval_data: Path, out: Path, steps: int, seeds: list[int], overrides: list[str],
               split: str = "all", episodes: int = 8, frames: int = 150,
               variants: list[str] | None = None) -> dict[str, Any]:
    """Train and score every variant at every seed; write ``OUT/levers.json`` and ``OUT/levers.md``."""
    from neuralcomputer.config import apply_overrides, preset_config
    from neuralcomputer.experiments.desktop_targets import targets_report
    from neuralcomputer.train.loop import train

    names = variants or [*VARIANTS, *RECALL_VARIANTS]
    unknown = [n for n in names if n not in VARIANTS and n not in RECALL_VARIANTS]
    if unknown:
        raise NCError(f"unknown variant(s) {unknown}; known: {', '.join([*VARIANTS, *RECALL_VARIANTS])}")
    if "full" not in names:
        names = ["full", *names]
    values: dict[str, dict[int, dict[str, list[float]]]] = {}
    for name in names:
        for seed in seeds:
            if RECALL_VARIANTS.get(name, {}).get("mode") == "alone" and seed != seeds[0]:
                # recall alone never runs the network: every seed's rollouts are the first seed's
                values[name][seed] = values[name][seeds[0]]
                continue
            where = _folder(out, name, seed)
            run, report_dir = where / "run", where / "targets"
            if name in RECALL_VARIANTS:
                run = where / "model"
                if not (run / MEMORY_FILE).is_file():
                    _with_memory(_folder(out, "full", seed) / "run", data, run, RECALL_VARIANTS[name])
            elif not (run / "done.json").is_file():
                cfg = apply_overrides(preset_config("guiworld-delta"),
                                      [*overrides, *VARIANTS[name], f"steps={steps}", f"seed={seed}"])
                train(cfg, data, run, progress=False)
            report_file = report_dir / "targets.json"
            if report_file.is_file():
                report = json.loads(report_file.read_text())
            else:
                # a trained row is the network alone: training exports the memory beside it unless the
                # overrides say mode=off, and a memory would replay the same changes for every row
                report = targets_report(run, eval_data, report_dir, split, episodes, long_frames=frames,
                                        recall=None if name in RECALL_VARIANTS else "off")
            values.setdefault(name, {})[seed] = _per_episode(report)
    result = {"steps": steps, "seeds": seeds, "data": str(data), "eval_data": str(eval_data), "split": split,
              "overrides": overrides, "rows": _rows(values)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "levers.json", json.dumps(result, indent=2).encode())
    atomic_write_bytes(out / "levers.md", levers_markdown(result).encode())
    return result


def _folder(out: Path, name: str, seed: int) -> Path:
    return out / name.replace(" ", "-").replace(",", "").replace("+", "plus") / f"seed-{seed}"


def _with_memory(run: Path, data: Path, dest: Path, recall: dict[str, Any]) -> None:
    """A copy of ``run``'s model at ``dest`` with the transition memory of ``data``'s train episodes
    beside it, read with the ``recall`` settings (the mode and any others); written to a temporary
    folder and renamed, so an interrupted build leaves nothing that looks finished."""
    import shutil
    import tempfile

    from neuralcomputer.models.cligen import read_model_config
    from neuralcomputer.pipelines.cligen import resolve_model_dir
    from neuralcomputer.train.deskdelta import build_memory

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".model-") as tmp:
        model = Path(tmp) / "model"
        shutil.copytree(resolve_model_dir(run), model)
        config = read_model_config(model)
        config["model"]["recall"] = {**config["model"].get("recall", {}), **recall}
        atomic_write_bytes(model / "config.json", json.dumps(config, indent=2).encode())
        build_memory(model, data, "train", progress=False)  # keeps the settings it finds in config.json
        if dest.exists():
            shutil.rmtree(dest)
        model.rename(dest)


def _rows(values: dict[str, dict[int, dict[str, list[float]]]]) -> dict[str, dict[str, Any]]:
    full = values["full"]
    rows: dict[str, dict[str, Any]] = {}
    for name, by_seed in values.items():
        row: dict[str, Any] = {}
        for key in COLUMNS:
            own, diffs = [], []
            for seed, per in by_seed.items():
                for i, v in enumerate(per[key]):
                    if np.isfinite(v):
                        own.append(v)
                        ref = full[seed][key][i]
                        if np.isfinite(ref):
                            diffs.append(v - ref)
            row[key] = {"mean": float(np.mean(own)) if own else None,
                        "diff_vs_full": float(np.mean(diffs)) if diffs and name != "full" else None,
                        "diff_ci95": bootstrap(diffs) if name != "full" else None, "n": len(own)}
        rows[name] = row
    return rows


def levers_markdown(result: dict[str, Any]) -> str:
    """Each variant's means and its paired difference from the full design."""
    lines = [f"# DeskDelta levers: {result['steps']} steps each, seeds {', '.join(map(str, result['seeds']))}", "",
             f"Trained on `{result['data']}`, scored on the `{result['split']}` episodes of `{result['eval_data']}`. "
             "Each cell: the mean over seeds and episodes; below the full design, the paired difference "
             "from it (same seed, same episode) with a 95% bootstrap interval.", "",
             "| variant | " + " | ".join(COLUMNS.values()) + " |", "|---|" + "---|" * len(COLUMNS)]
    for name, row in result["rows"].items():
        cells = []
        for key in COLUMNS:
            c = row[key]
            if c["mean"] is None:
                cells.append("n/a")
                continue
            text = f"{c['mean']:.3f}"
            if c["diff_vs_full"] is not None:
                ci = c["diff_ci95"]
                text += f" ({c['diff_vs_full']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "") + ")"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
