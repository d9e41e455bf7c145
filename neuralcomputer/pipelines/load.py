"""One loader for every model: the pipeline of a run folder, checkpoint or model directory, by its kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neuralcomputer.pipelines.cligen import resolve_model_dir


def load_pipeline(path: str | Path, **kwargs) -> Any:
    """The pipeline of any model: a run folder, checkpoint or model directory -> :class:`CLIGenPipeline`,
    :class:`~neuralcomputer.pipelines.cells.CellPipeline` or :class:`~neuralcomputer.pipelines.guiworld.GUIWorldRollout`
    by the model's ``kind`` (keyword arguments go to its ``load``)."""
    model_dir = resolve_model_dir(path)
    kind = json.loads((model_dir / "config.json").read_text()).get("kind", "cligen")
    if kind == "guiworld":
        from neuralcomputer.pipelines.guiworld import GUIWorldRollout

        return GUIWorldRollout.load(model_dir, **kwargs)
    if kind == "guiworld-delta":
        from neuralcomputer.pipelines.deskdelta import DeskDeltaRollout

        return DeskDeltaRollout.load(model_dir, **kwargs)
    if kind == "cellgen":
        from neuralcomputer.pipelines.cells import CellPipeline

        return CellPipeline.load(model_dir, **kwargs)
    from neuralcomputer.pipelines.cligen import CLIGenPipeline

    return CLIGenPipeline.load(model_dir, **kwargs)
