"""Data-parallel training under ``torchrun`` (``nas evaluate`` only): process group, ranks, sharding.

``torchrun --nproc_per_node=N -m nascli evaluate ...`` starts N processes with RANK, LOCAL_RANK and
WORLD_SIZE set. With WORLD_SIZE > 1, :func:`setup` joins the default process group (NCCL on CUDA,
gloo on CPU) and each rank runs on ``cuda:LOCAL_RANK`` (or the CPU). The training loop then

* wraps the network in DistributedDataParallel: gradients are averaged over the ranks, so with equal
  shard sizes one step equals a step on the global batch (BatchNorm statistics stay per shard);
* draws the global batch of ``protocol.batch_size`` images from one permutation seeded identically on
  every rank and lets each rank train on its slice (:class:`ShardedStream`, like DistributedSampler);
* evaluates the test split in contiguous shards (:func:`shard_bounds`) and sums the counts with an
  all-reduce (:func:`all_reduce_sum`), after copying rank 0's BatchNorm buffers to every rank, so the
  accuracy is exactly that of rank 0's model, the one that is checkpointed.

Only rank 0 writes the run directory and prints the result line (:func:`is_main`). ``nas search``
stays single-device: it scales through sweeps (see docs/CLUSTER.md); the CLI refuses it under torchrun.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from nascli.data.base import DatasetInfo, ImageSplit
from nascli.data.stream import BatchStream
from nascli.errors import NasError


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torchrun job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def context_from_env(environ: Mapping[str, str] | None = None) -> DistContext:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (defaults 0 / 1 / RANK)."""
    environ = os.environ if environ is None else environ
    world = int(environ.get("WORLD_SIZE", "1") or 1)
    rank = int(environ.get("RANK", "0") or 0)
    local = int(environ.get("LOCAL_RANK", str(rank)) or 0)
    if world < 1 or not 0 <= rank < world:
        raise NasError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return DistContext(rank, world, local)


def current() -> DistContext:
    """The context of the joined process group, else the one the environment describes."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), context_from_env().local_rank)
    return context_from_env()


def world_size() -> int:
    return current().world_size


def rank() -> int:
    return current().rank


def is_main() -> bool:
    """True on rank 0 (and in every single-process run): the process that writes and prints."""
    return current().is_main


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU ones."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group when WORLD_SIZE > 1; returns the context and this rank's device.

    On CUDA the device becomes ``cuda:LOCAL_RANK`` (and the current device). Idempotent.
    """
    ctx = context_from_env()
    if not ctx.distributed:
        return ctx, device
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise NasError(f"LOCAL_RANK={ctx.local_rank} but only {torch.cuda.device_count()} CUDA devices are visible")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(device), rank=ctx.rank, world_size=ctx.world_size)
    return ctx, device


def shutdown() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks in place (no-op in a single process); returns it."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for buf in module.buffers():
            dist.broadcast(buf, src=src)


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous ``[start, end)`` of rank ``rank`` out of ``n`` items: sizes differ by at most one and
    the shards of ranks 0..world-1 tile ``range(n)`` in order."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} out of world {world}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_split(split: ImageSplit, rank: int, world: int) -> ImageSplit:
    """Rank ``rank``'s contiguous shard of ``split`` (a view, no copy)."""
    start, end = shard_bounds(len(split), rank, world)
    return ImageSplit(split.images[start:end], split.labels[start:end])


class ShardedStream(BatchStream):
    """A :class:`BatchStream` of global batches whose every rank trains on its slice.

    All ranks hold the same generator (same seed), so they draw the same permutation and the same
    augmentation; the global batch of ``batch_size`` images is augmented and rank r keeps rows
    ``[r * b, (r + 1) * b)`` with ``b = batch_size / world``. Hence the rank batches put side by side are
    exactly the single-process batch, and the stream state is identical on every rank: rank 0's
    checkpoint resumes them all. (The other ranks' rows are augmented and dropped: cheap device-side
    tensor work next to a forward/backward pass.)
    """

    def __init__(self, split: ImageSplit, info: DatasetInfo, batch_size: int, *, seed: int, train_aug: bool,
                 cutout: int = 0, mode: str = "shuffle", rank: int = 0, world_size: int = 1):
        if world_size < 1 or not 0 <= rank < world_size:
            raise NasError(f"rank {rank} out of world size {world_size}")
        if batch_size % world_size:
            raise NasError(f"batch size {batch_size} does not split evenly over {world_size} processes; "
                           f"use a multiple of {world_size}")
        super().__init__(split, info, batch_size, seed=seed, train_aug=train_aug, cutout=cutout, mode=mode)
        self.rank, self.world_size = int(rank), int(world_size)
        self.local_batch_size = batch_size // world_size

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super().next()
        start = self.rank * self.local_batch_size
        return x[start:start + self.local_batch_size], y[start:start + self.local_batch_size]

    __next__ = next


def sharded_stream_factory(ctx: DistContext) -> Any:
    """A ``make_stream`` for :func:`nascli.train.train_network` that shards over ``ctx``'s ranks."""

    def make(split: ImageSplit, info: DatasetInfo, batch_size: int, **kwargs: Any) -> ShardedStream:
        return ShardedStream(split, info, batch_size, rank=ctx.rank, world_size=ctx.world_size, **kwargs)

    return make
