"""Find pretrained metric weights the user already has on disk; never download anything.

LPIPS and FVD need networks trained elsewhere (ImageNet AlexNet, the LPIPS v0.1 linear layers,
Kinetics-400 R3D-18). We look for the files under the names their publishers use, so a file that
torchvision or the ``lpips`` package once downloaded on some machine can be copied in as is:

========== =============================== ==================================================
name       file                            published by
========== =============================== ==================================================
alexnet    ``alexnet-owt-7be5be79.pth``    torchvision ``AlexNet_Weights.IMAGENET1K_V1``
           (``alexnet-owt-4df8aa71.pth``)  (the same weights under torchvision < 0.13's name)
lpips_alex ``alex.pth``                    the ``lpips`` package, ``lpips/weights/v0.1/``
r3d18      ``r3d_18-b3b3357e.pth``         torchvision ``R3D_18_Weights.KINETICS400_V1``
========== =============================== ==================================================

``find_lpips_weights`` returns the AlexNet and ``alex.pth`` pair LPIPS needs, or None unless both exist.

Search order: the explicit path (a file, or a directory holding the file), ``$NC_WEIGHTS_DIR``,
then torch's hub cache ``$TORCH_HOME/hub/checkpoints`` (``TORCH_HOME`` defaults, like torch, to
``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``). When nothing is found the caller reports the
metric as "unavailable: no weights"; it never prints a number for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from neuralcomputer.errors import NCError

KNOWN_WEIGHTS: dict[str, tuple[str, ...]] = {
    "alexnet": ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth"),
    "lpips_alex": ("alex.pth",),
    "r3d18": ("r3d_18-b3b3357e.pth",),
}


def torch_hub_checkpoints() -> Path:
    """The directory torch itself caches hub downloads in (``$TORCH_HOME/hub/checkpoints``)."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        torch_home = os.path.join(xdg, "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def _in_dir(directory: Path, file_names: tuple[str, ...]) -> Path | None:
    for file_name in file_names:
        candidate = directory / file_name
        if candidate.is_file():
            return candidate
    return None


def find_weights(name: str, explicit_path: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the path of the weights file for ``name`` (a key of ``KNOWN_WEIGHTS``), or None.

    An ``explicit_path`` that is a file is returned as is (any file name: the user chose it); a
    directory is searched for the known names before the other places. An explicit path that does
    not exist is an error rather than "unavailable", since it is almost always a typo.
    """
    if name not in KNOWN_WEIGHTS:
        raise NCError(f"unknown weights {name!r}; known: {', '.join(sorted(KNOWN_WEIGHTS))}")
    file_names = KNOWN_WEIGHTS[name]
    if explicit_path is not None:
        explicit = Path(explicit_path).expanduser()
        if explicit.is_file():
            return explicit
        if not explicit.is_dir():
            raise NCError(f"{explicit}: no such weights file or directory (for {name})")
        found = _in_dir(explicit, file_names)
        if found is not None:
            return found
    directories = []
    if os.environ.get("NC_WEIGHTS_DIR"):
        directories.append(Path(os.environ["NC_WEIGHTS_DIR"]).expanduser())
    directories.append(torch_hub_checkpoints())
    for directory in directories:
        found = _in_dir(directory, file_names)
        if found is not None:
            return found
    return None


def find_lpips_weights(explicit_path: str | os.PathLike[str] | None = None) -> tuple[Path, Path] | None:
    """Both LPIPS files, ``(alexnet, lpips_alex)``, or None unless both are found.

    ``explicit_path`` may be a folder holding ``alexnet-owt-7be5be79.pth`` and ``alex.pth``, or one
    file: a file under an AlexNet name is the trunk, any other file the linear layers; the other
    file is then looked for beside it, and after that in the usual places.
    """
    alexnet_hint: Path | None = None
    lin_hint: Path | None = None
    if explicit_path is not None:
        explicit = Path(explicit_path).expanduser()
        if explicit.is_file():
            if explicit.name in KNOWN_WEIGHTS["alexnet"]:
                alexnet_hint, lin_hint = explicit, explicit.parent
            else:
                alexnet_hint, lin_hint = explicit.parent, explicit
        else:
            alexnet_hint = lin_hint = explicit
    alexnet = find_weights("alexnet", alexnet_hint)
    lins = find_weights("lpips_alex", lin_hint)
    if alexnet is None or lins is None:
        return None
    return alexnet, lins


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a plain tensor state dict on the CPU, refusing pickled code (``weights_only``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: one clear line, not a pickle traceback
        raise NCError(f"{path}: cannot read as a torch state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NCError(f"{path}: expected a dict of tensors (a state dict)")
    return dict(state)


def load_exact(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike[str],
               what: str = "the network") -> None:
    """``load_state_dict(strict=True)`` with the mismatch said in one line."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise NCError(f"{source}: keys do not match {what} (missing {missing[:4]}, unexpected {unexpected[:4]})")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise NCError(f"{source}: {key} has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}")
    module.load_state_dict(state, strict=True)
