"""Data-parallel training: each batch cut into shards, each shard with its own noise.

A training step cuts its batch into `count` equal shards (torch.tensor_split); shard k draws its
noise from its own generator (seeded seed + k x SHARD_SEED_STEP; shard 0's is the run's one
generator, which also draws each epoch's order). The step's gradient is the sum over shards of
each shard's mean loss gradient weighted by its share of the batch: the batch's mean.

Run under torchrun (torch.distributed's launcher: WORLD_SIZE, RANK and the rendezvous in the
environment), process r computes shard r and the gradients are summed across processes (gloo on
CPU, NCCL on GPU); run as one process with `count` shards, it computes them in turn. Both give
the same numbers (up to the order of a floating-point sum over more than two processes), so a
run of N processes can be checked, or resumed, on one machine with --shards N.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

SHARD_SEED_STEP = 1_000_003


@dataclass
class Shards:
    count: int = 1  # shards a batch is cut into
    mine: list[int] = field(default_factory=lambda: [0])  # the shards this process computes
    distributed: bool = False

    @property
    def leader(self) -> bool:
        """Whether this process writes files and reports (process 0, or the only one)."""
        return 0 in self.mine

    def generators(self, seed: int) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(seed + k * SHARD_SEED_STEP) for k in range(self.count)]

    def parts(self, batch_size: int) -> list[torch.Tensor]:
        """Each shard's rows of a batch."""
        return list(torch.tensor_split(torch.arange(batch_size), self.count))

    def shared_order(self, order: torch.Tensor) -> torch.Tensor:
        """The epoch's order as process 0 drew it (every process uses its order)."""
        if self.distributed:
            dist.broadcast(order, src=0)
        return order

    def summed(self, parameters: list[torch.Tensor], loss: float) -> float:
        """Sums the gradients (and the loss) over processes; returns the summed loss."""
        if not self.distributed:
            return loss
        for p in parameters:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
        total = torch.tensor([loss], dtype=torch.float64)
        dist.all_reduce(total)
        return float(total.item())

    def gathered_states(self, generators: list[torch.Generator]) -> list[torch.Tensor]:
        """Every shard's generator state (a process holds its own shards' up to date)."""
        states = [g.get_state() for g in generators]
        if not self.distributed:
            return states
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, {k: states[k] for k in self.mine})
        for held in everyone:
            for k, state in held.items():
                states[k] = state
        return states


def from_environment(shards: int, device: str) -> Shards:
    """The shards of this process: under torchrun (WORLD_SIZE > 1) one per process, joined in a
    process group (NCCL for a CUDA device, else gloo); otherwise all `shards` here."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shards(shards, list(range(shards)))
    if shards not in (1, world):
        raise ValueError(f"--shards {shards} under torchrun of {world} processes: one shard per process")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    rank = dist.get_rank()
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return Shards(world, [rank], distributed=True)


def finish(shards: Shards) -> None:
    """Leave the process group once every process is done (process 0 writes the model while the
    others wait: one leaving early aborts the rest)."""
    if shards.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
