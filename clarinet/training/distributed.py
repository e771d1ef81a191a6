"""Processes and their data: DistributedDataParallel when launched by ``torchrun`` (``WORLD_SIZE`` > 1;
NCCL on GPUs, gloo on the CPU), one process otherwise, and each process's share of every epoch's
batches from any global step on (so a resumed run reads what the uninterrupted one would)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import torch

from .config import ConfigError, TrainConfig

__all__ = ["Batches", "DDP", "Dist", "setup_distributed"]


@dataclass
class Dist:
    """This process's place: rank, world size, device; ``main`` (rank 0) writes checkpoints and logs."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()

    def all_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t)
            t = t / self.world
        return t

    def close(self):
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup_distributed(device: Optional[str]) -> Dist:
    """The process group from torchrun's environment (joined here unless already initialised) and the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} asked for, but no CUDA GPU is available")
        return Dist(device=dev)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    want = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} asked for, but no CUDA GPU is available")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = want
    owns = False
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return Dist(rank=rank, world=world, local_rank=local, device=dev, owns_group=owns)


class DDP(torch.nn.parallel.DistributedDataParallel):
    """DistributedDataParallel that exposes the model's ``backend`` (the losses read it)."""

    @property
    def backend(self):
        return self.module.backend


class _IndexSampler(torch.utils.data.Sampler):
    def __init__(self, indices):
        self.indices = list(indices)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class Batches:
    """Per-process batches, epoch after epoch, starting at any global step (for resuming)."""

    def __init__(self, dataset, cfg: TrainConfig, dist: Dist, collate=None):
        from torch.utils.data import DistributedSampler

        if collate is None:
            from ..data import collate

        self.dataset, self.cfg, self.dist, self.collate = dataset, cfg, dist, collate
        self.sampler = DistributedSampler(dataset, num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                          seed=cfg.seed, drop_last=False)
        self.per_epoch = math.ceil(len(self.sampler) / cfg.batch_size)

    def position(self, step: int) -> tuple[int, int]:
        return divmod(step, self.per_epoch)

    def iterate(self, start_step: int):
        from torch.utils.data import DataLoader

        epoch, skip = self.position(start_step)
        while True:
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)[skip * self.cfg.batch_size:]
            # set_epoch restarts the segment draws: the segments then depend on (seed, index, epoch)
            # only, the same whether or not the run was resumed (and in worker copies alike)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            loader = DataLoader(self.dataset, batch_size=self.cfg.batch_size, sampler=_IndexSampler(indices),
                                num_workers=self.cfg.num_workers, collate_fn=self.collate,
                                pin_memory=self.dist.device.type == "cuda", drop_last=False)
            yield from loader
            epoch, skip = epoch + 1, 0

