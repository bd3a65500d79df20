"""Training in several processes (``torchrun``): process group, DDP wrapping, and what DDP does not synchronise.

``configs/multi_gpu_train.yaml`` uses these. Each helper is a no-op (or returns its input) in a single
process, so ``configs/train.yaml`` can call the same functions either way.

What this trainer needs beyond wrapping the networks in ``DistributedDataParallel`` (DDP):

- the learnable loss log-variances (Eq. 5) are optimised with Gls but live outside it, so DDP does not
  average their gradients: :func:`average_gradients` does, after each backward;
- the joint discriminator T runs three times per iteration; the third pass only carries Gls's adversarial
  gradient, so it runs on the unwrapped module (:func:`unwrap`) and DDP never waits for T gradients that
  the generator step does not compute;
- batch-norm running statistics are updated locally by every forward, so rank 0's are broadcast before each
  validation (:class:`BroadcastBuffers`) and all ranks validate, and rank 0 saves, the same model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TypeVar

import ignite.distributed as idist
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)

T = TypeVar("T")


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """True on rank 0, the process that writes checkpoints, logs and exports."""
    return rank() == 0


def local_device() -> torch.device:
    """The device of this process: ``cuda:<LOCAL_RANK>`` (set by torchrun) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_process_group(device: torch.device | str, timeout_minutes: float = 60.0) -> None:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on a CPU); set this process's GPU.

    ``timeout_minutes`` bounds every collective, the wait for rank 0's ``prepare`` included (NCCL's default,
    10 minutes, is shorter than preprocessing a large cohort).
    """
    device = torch.device(device)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError("configs/multi_gpu_train.yaml runs under torchrun (RANK and WORLD_SIZE are not set): "
                           "torchrun --standalone --nnodes=1 --nproc_per_node=N -m monai.bundle run training ...")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(minutes=timeout_minutes))
    # ignite's first idist.get_rank() (e.g. in a checkpoint saver only rank 0 builds) makes process groups,
    # a collective call: made here, on every rank, it cannot leave the others waiting
    idist.sync()
    logger.info("process %d of %d on %s (%s)", dist.get_rank(), dist.get_world_size(), device, dist.get_backend())


def destroy_process_group() -> None:
    """Leave the process group (after every rank has finished)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        idist.sync()


def main_process_first(work: Callable[[], T], then: Callable[[], T]) -> T:
    """Run ``work`` on rank 0 while the other ranks wait at a barrier, then ``then`` on those ranks.

    In a single process this is just ``work()``. Used for steps that write shared files (data, plan, cache).
    """
    if not is_distributed():
        return work()
    if is_main_process():
        try:
            return work()
        finally:  # release the other ranks even when rank 0 fails (torchrun then stops them all)
            dist.barrier()
    dist.barrier()
    return then()


def training_module(network: torch.nn.Module) -> torch.nn.Module:
    """The module a trainer calls: ``network.training_module()`` when the network has one (the multi-task
    U-Net returns both its outputs through it), else ``network``."""
    make = getattr(network, "training_module", None)
    return make() if callable(make) else network


def ddp(network: torch.nn.Module | None, device: torch.device | str,
        find_unused_parameters: bool = False) -> torch.nn.Module | None:
    """``DistributedDataParallel`` around :func:`training_module` of ``network`` (None stays None).

    DDP broadcasts rank 0's parameters and buffers when it is built, so every rank starts from the same weights.
    """
    if network is None:
        return None
    device = torch.device(device)
    return DistributedDataParallel(training_module(network), device_ids=[device] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (or ``module`` itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def parameters_outside(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """Parameters ``optimizer`` updates that the DDP ``module`` does not synchronise ([] if it is not DDP)."""
    if not isinstance(module, DistributedDataParallel):
        return []
    owned = {id(p) for p in module.parameters()}
    return [p for group in optimizer.param_groups for p in group["params"] if id(p) not in owned]


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of ``parameters`` over all ranks, as DDP does for its own parameters."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def broadcast_buffers(*modules: torch.nn.Module | None) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank."""
    if not is_distributed():
        return
    for module in modules:
        if module is not None:
            for buffer in unwrap(module).buffers():
                dist.broadcast(buffer, src=0)


class BroadcastBuffers:
    """Handler: :func:`broadcast_buffers` of ``modules`` at the end of every epoch (attach it before validation)."""

    def __init__(self, modules: Iterable[torch.nn.Module | None]) -> None:
        self.modules = [m for m in modules if m is not None]

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: broadcast_buffers(*self.modules))
