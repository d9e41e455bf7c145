"""Fully sharded data parallel (FSDP2, ``torch.distributed.fsdp.fully_shard``) for the one training loop.

Why torch's FSDP2 directly and not accelerate's FSDP plugin: accelerate falls back to DDP on CPU
processes (measured: ``ACCELERATE_USE_FSDP=true`` under ``torchrun`` on CPUs gives
``DistributedDataParallel``), so the sharded path could never be tested on the machines most users
and our CI have. ``fully_shard`` runs the same code over gloo (CPU) and NCCL (GPU).

Each transformer block is its own shard group (its weights are gathered just before the block runs
and freed after it), the root group holds everything else (caption and image encoders, patch
embedding, head). Parameters become ``DTensor`` shards; the loop keeps a plain, unsharded replica on
the main process only for what needs whole weights: validation and export. Checkpoints hold whole
(unsharded) tensors, so a checkpoint does not depend on the number of processes that wrote it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)  # whole tensors, on rank 0, in CPU memory
_SCATTER = StateDictOptions(full_state_dict=True)  # every rank passes whole tensors and keeps its shard


def shard(root: nn.Module, device: torch.device, world: int) -> None:
    """Shard ``root`` in place over ``world`` processes: one group per transformer block, the rest at the root.

    Weights are gathered and gradients reduced in float32; ``mixed_precision=bf16`` runs the forward
    under autocast, as the DDP path does, rather than through FSDP's bfloat16 weight casting: the Wan
    blocks mix float32 norms with their inputs, and autocast keeps both paths numerically alike.
    """
    mesh = init_device_mesh(device.type, (world,))
    for name, sub in root.named_modules():
        if isinstance(sub, nn.ModuleList) and name.endswith("transformer.blocks"):
            for block in sub:
                fully_shard(block, mesh=mesh)
    fully_shard(root, mesh=mesh)


def clip_grad_norm_(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip sharded gradients by their global norm (over all shards); returns that norm."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads)
    if isinstance(total, DTensor):
        total = total.full_tensor()  # the per-shard partial norms reduced over all processes
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


def whole(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Whole tensors from shards (collective: every process must call it)."""
    return [t.full_tensor().cpu() if isinstance(t, DTensor) else t.detach().cpu() for t in tensors]


def shard_like(tensors: list[torch.Tensor], like: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each whole tensor cut into this process's shard of the matching parameter (collective)."""
    return [distribute_tensor(t.to(p.device_mesh.device_type), p.device_mesh, p.placements)
            if isinstance(p, DTensor) else t.to(p.device) for t, p in zip(tensors, like, strict=True)]


def model_state(root: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """Whole weights of ``root``'s submodule ``prefix`` (collective; filled on rank 0 only)."""
    full = get_model_state_dict(root, options=_GATHER)
    return {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}


def load_model_state(root: nn.Module, prefix: str, state: dict[str, torch.Tensor]) -> None:
    """Load whole weights of submodule ``prefix`` into the sharded ``root`` (collective)."""
    set_model_state_dict(root, {prefix + k: v for k, v in state.items()}, options=_SCATTER)


def optimizer_state(root: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state as whole tensors keyed by parameter name (collective; rank 0 only)."""
    return get_optimizer_state_dict(root, optimizer, options=_GATHER)


def load_optimizer_state(root: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a whole optimizer state (from :func:`optimizer_state`) into the sharded optimizer (collective)."""
    set_optimizer_state_dict(root, optimizer, optim_state_dict=state, options=_SCATTER)
