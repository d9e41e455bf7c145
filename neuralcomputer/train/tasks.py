"""What the one training loop trains: a task gives a module, micro-batches, a loss, validation and export.

``batch(step, rank, world, micro, batch_size)`` prepares one micro-batch (data and all its random
draws) outside the model; ``compute_loss(module, batch)`` is pure model work, run inside the
data-parallel wrapper's forward so that DDP sees every parameter the loss touches.

* :class:`~neuralcomputer.train.cligen.TokenizerTask` -- the cell autoencoder (``cell-ae`` preset): MSE +
  L1 over character cells, a fixed share of them with ink (blank cells are easy and would dominate).
* :class:`~neuralcomputer.train.cligen.CLIGenTask` -- the CLIGen model: Wan's rectified-flow loss on clip
  latents, caption dropout for classifier-free guidance, validation by sampling held-out clips.
* :class:`~neuralcomputer.train.guiworld.GUIWorldTask` -- the desktop model (Wan-style DiT on latents).
* :class:`~neuralcomputer.train.deskdelta.DeskDeltaTask` -- DeskDelta, the CPU desktop model (a copy prior).

:func:`make_task` picks one by the config's model kind.

All randomness of a step comes from a generator seeded by (seed, step, rank), so a resumed run
repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuralcomputer.errors import NCError
from neuralcomputer.train.cligen import CLIGenTask, TokenizerTask


def make_task(config: dict[str, Any], data: Path, run: Path, progress: bool = True):
    kind = config["model"]["kind"]
    if kind == "tokenizer":
        return TokenizerTask(config, data, run, progress)
    if kind == "cligen":
        return CLIGenTask(config, data, run, progress)
    if kind == "cellgen":
        from neuralcomputer.train.cells import CellGenTask

        return CellGenTask(config, data, run, progress)
    if kind == "guiworld":
        from neuralcomputer.train.guiworld import GUIWorldTask

        return GUIWorldTask(config, data, run, progress)
    if kind == "guiworld-delta":
        from neuralcomputer.train.deskdelta import DeskDeltaTask

        return DeskDeltaTask(config, data, run, progress)
    raise NCError(f"preset {config['preset']}: unknown model kind {kind!r}")
