"""Sampling a CLIGen model: the Python API behind ``ncomp sample``, eval, probes and the runtime.

``CLIGenPipeline.load(RUN_OR_DIR)`` takes a run folder (its latest checkpoint, EMA weights when
present) or an exported model directory; ``generate(first_frame, caption, num_frames, seed)`` is the
:class:`~neuralcomputer.eval.interface.ClipGenerator` contract.

Time: a model samples ``num_frames`` frames ``frame_stride`` source frames apart (e.g. 5 frames at
1 fps for ``cligen-tiny``); ``generate`` returns frames at the data's 15 fps by holding each sampled
frame until the next (terminal screens change in steps, so holding is the honest interpolation).
Frame 0 is the given first frame, exactly.

Determinism: with ``deterministic=True`` PyTorch's deterministic algorithms are enforced while
sampling and the noise comes from a seeded CPU generator, so the same inputs, seed and thread count
give bit-identical frames on the same machine (tested in ``tests/test_cligen_model.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from neuralcomputer.data.terminal.captions import strip_timing
from neuralcomputer.data.torch_dataset import frames_to_tensor, to_uint8_frames
from neuralcomputer.diffusion.sampling import deterministic_algorithms, guided, sample
from neuralcomputer.errors import NCError
from neuralcomputer.models.cligen import CLIGenModel, read_model_config

# The weights file that marks a model directory, per model family (Wan DiT / desktop, CellGen, DeskDelta).
WEIGHT_FILES = ("transformer.safetensors", "cellgen.safetensors", "deskdelta.safetensors")


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory from a model directory, a checkpoint, or a run folder (its latest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise NCError(f"{path}: no such model, checkpoint or run folder")
    if (path / "config.json").is_file() and any((path / w).is_file() for w in WEIGHT_FILES):
        return path
    for sub in ("ema", "model"):  # a checkpoint folder
        if (path / sub / "config.json").is_file():
            return path / sub
    ckpts = path / "checkpoints"
    if ckpts.is_dir():
        found = sorted((p for p in ckpts.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
        if found:
            return resolve_model_dir(found[-1])
    if (path / "model" / "config.json").is_file():  # an exported run
        return path / "model"
    raise NCError(f"{path}: no model here (expected a model directory with config.json, a checkpoint, "
                  "or a run folder with checkpoints/)")


def hold_frames(sampled: np.ndarray, stride: int, num_frames: int) -> np.ndarray:
    """Frames at the data rate from frames sampled ``stride`` apart: frame i shows sample ``i // stride``."""
    index = np.minimum(np.arange(num_frames) // stride, len(sampled) - 1)
    return sampled[index]


class CLIGenPipeline:
    """A trained CLIGen model plus a sampler.

    Args:
        model: the model (eval mode).
        sampler, steps, guidance_scale, shift: override the model config's sampling defaults.
        deterministic: enforce deterministic algorithms (bit-identical repeats).
        device: where to run.
    """

    def __init__(self, model: CLIGenModel, *, sampler: str | None = None, steps: int | None = None,
                 guidance_scale: float | None = None, shift: float | None = None, deterministic: bool = True,
                 device: str | torch.device = "cpu") -> None:
        cfg = model.config
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.sampler = sampler or cfg["sampler"]
        self.steps = steps or cfg["sample_steps"]
        self.guidance_scale = cfg["guidance_scale"] if guidance_scale is None else guidance_scale
        self.shift = shift or cfg["flow_shift"]
        self.deterministic = deterministic
        self.height, self.width = cfg["height"], cfg["width"]
        self.num_frames, self.stride, self.fps = cfg["num_frames"], cfg["frame_stride"], cfg["fps"]

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> CLIGenPipeline:
        """From a run folder, checkpoint or model directory (no network)."""
        return cls(CLIGenModel.from_pretrained(resolve_model_dir(path)), **kwargs)

    @property
    def clip_frames(self) -> int:
        """Frames of a whole clip at the data rate: the first, then each sample held ``stride`` frames."""
        return (self.num_frames - 1) * self.stride + 1

    def check_frame(self, frame: np.ndarray) -> None:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise NCError(f"first frame: expected (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        if frame.shape[:2] != (self.height, self.width):
            raise NCError(f"first frame is {frame.shape[1]}x{frame.shape[0]}; this model takes "
                          f"{self.width}x{self.height} (render the data at the model's font size and grid)")

    @torch.no_grad()
    def sample_frames(self, first_frames: np.ndarray, captions: list[str], seed: int,
                      callback: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The model's own frames: ``(B, H, W, 3)`` first frames -> ``(B, num_frames, H, W, 3)`` uint8."""
        for f in first_frames:
            self.check_frame(f)
        model = self.model
        if not model.config.get("timing", False):  # trained on captions that never said when (the paper's)
            captions = [strip_timing(c) for c in captions]
        b = len(captions)
        first = frames_to_tensor(np.asarray(first_frames)).to(self.device)
        with deterministic_algorithms(self.deterministic):
            text = model.encode_text(list(captions) + ([""] * b if self.guidance_scale != 1.0 else []))
            image = model.encode_image(first)
            cond = model.condition(first)
            if self.guidance_scale != 1.0:
                image = None if image is None else torch.cat([image, image])
                cond2 = torch.cat([cond, cond])
            else:
                cond2 = cond

            def denoise(x: torch.Tensor, t: torch.Tensor, both: bool) -> torch.Tensor:
                return model(x, t, cond2 if both else cond, text if both else text[:b], image)

            generator = torch.Generator("cpu").manual_seed(int(seed))
            latents = sample(guided(denoise, self.guidance_scale), (b, *model.latent_shape), sampler=self.sampler,
                             steps=self.steps, shift=self.shift, generator=generator, device=self.device,
                             callback=callback)
            frames = model.tokenizer.decode(latents, size=(self.height, self.width))
        out = np.stack([to_uint8_frames(f) for f in frames])[:, : self.num_frames]
        out[:, 0] = first_frames  # frame 0 is the given frame, exactly
        return out

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        """The ClipGenerator contract: ``(num_frames, H, W, 3)`` uint8 at the data's frame rate."""
        sampled = self.sample_frames(first_frame[None], [caption], seed)[0]
        return hold_frames(sampled, self.stride, num_frames)


def write_clip(out: str | Path, frames: np.ndarray, fps: float) -> None:
    """``(T, H, W, 3)`` uint8 to a lossless .mp4 or a folder of PNGs (atomic: a temp name, then renamed)."""
    import shutil
    import tempfile

    from PIL import Image

    from neuralcomputer.data.video import write_mp4

    out = Path(out)
    if out.suffix.lower() == ".mp4":
        write_mp4(out, frames, fps, lossless=True)
        return
    if out.suffix:
        raise NCError(f"{out}: expected a .mp4 file or a folder for PNG frames")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(tmp / f"frame-{i:03d}.png", optimize=False)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_model(source: str | Path, out: str | Path) -> Path:
    """Copy the model directory a run or checkpoint resolves to into ``out`` (atomic), checking it loads."""
    import shutil

    src = resolve_model_dir(source)
    kind = read_model_config(src).get("kind")
    if kind == "guiworld":  # refuse to export something that does not load
        from neuralcomputer.models.guiworld import GUIWorldModel

        GUIWorldModel.from_pretrained(src)
    elif kind == "guiworld-delta":
        from neuralcomputer.models.deskdelta import DeskDeltaModel

        DeskDeltaModel.from_pretrained(src)
    else:
        CLIGenModel.from_pretrained(src)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
