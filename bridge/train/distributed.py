"""Multi-process training under ``torchrun``: process-group set-up, the training-data sharder,
and the few collectives the training loop needs (PyTorch DistributedDataParallel).

A run of ``N`` processes trains like one process with the same global batch: every step,
process ``r`` takes columns ``r, r + N, r + 2N, ...`` of the global batch that a single
process would have drawn (same shuffle, same per-epoch seed), gradients are averaged across
processes, and modality dropout is drawn on the global batch and sliced.
"""

from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from einops import rearrange
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from bridge.modality import Modality
from bridge.presence import complete_presence

# Rank 0 preprocesses (and caches) the data while the others wait at a barrier: allow for that.
_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    """This process's place in a run; ``size == 1`` is a plain single-process run."""

    rank: int = 0  # global rank: 0 writes the checkpoint and prints
    size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine: the CUDA device index

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world() -> World:
    """The world ``torchrun`` describes in the environment (one process when not launched by it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def setup(world: World, device: str) -> str:
    """Join the process group (gloo on CPU, NCCL on CUDA); returns this process's device.

    Args:
        world: from :func:`launched_world`.
        device: ``auto``, ``cpu`` or ``cuda``; each process of a CUDA run uses ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: on a device that names one GPU for every process.
    """
    if not world.distributed:
        return device
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"under torchrun --device must be auto, cpu or cuda (each process uses cuda:LOCAL_RANK), "
                         f"got {device}")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=world.rank, world_size=world.size, timeout=_TIMEOUT)
    return f"cuda:{world.local_rank}" if cuda else "cpu"


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def gather_objects(obj: Any, world: World) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def merge_ranks(values: Any, world: World) -> Any:
    """Every process's ``values`` combined, the same on every process: numbers summed, arrays
    concatenated in rank order, tuples element by element, dicts key by key (a key only some
    processes have is merged over those). A single process gets its ``values`` back."""
    if not world.distributed:
        return values
    return _merge(gather_objects(values, world))


def _merge(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, dict):
        keys = dict.fromkeys(k for part in parts for k in part)
        return {k: _merge([part[k] for part in parts if k in part]) for k in keys}
    if isinstance(first, tuple):
        return tuple(_merge(list(column)) for column in zip(*parts))
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, (int, float)):
        return sum(parts)
    raise TypeError(f"merge_ranks cannot merge a {type(first).__name__}")


def shuffled_order(n: int, seed: int) -> list[int]:
    """The order in which a single-process epoch visits ``range(n)``: ``make_loader``'s shuffle with
    this seed, iterated through ``tqdm`` as the training loop does (``tqdm.auto`` starts an extra
    iterator, and each iterator draws a seed from the loader's generator before it shuffles)."""
    loader = DataLoader(range(n), batch_size=max(1, n), shuffle=True, generator=torch.Generator().manual_seed(seed))
    return [i for batch in tqdm(loader, disable=True) for i in batch.tolist()]


class GlobalBatchSampler(DistributedSampler):
    """A :class:`DistributedSampler` whose shuffle is the single-process loader's.

    With a per-process batch of ``b``, step ``k`` of process ``r`` gets columns ``r::N`` of the
    single-process global batch ``k`` of ``b * N`` samples. As in ``DistributedSampler``, the
    epoch is padded with its first samples to a multiple of ``N``, so every process takes the
    same number of equally sized batches (exactly the single-process batches when ``N``
    divides the number of samples). ``set_epoch(e)`` uses the seed ``seed + e``.
    """

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        order = shuffled_order(n, self.seed + self.epoch) if self.shuffle else list(range(n))
        padding = self.total_size - n
        if padding > 0:
            order += (order * math.ceil(padding / n))[:padding]
        return iter(order[self.rank:self.total_size:self.num_replicas])


def gather_present(present: dict[Modality, Tensor], world: World) -> dict[Modality, Tensor]:
    """The global batch's per-modality availability ``(b * N,)`` on the CPU, from each process's
    ``(b,)`` (columns interleaved as :class:`GlobalBatchSampler` deals them)."""
    any_mask = next(iter(present.values()))
    full_local = complete_presence(present, tuple(Modality), len(any_mask), any_mask.device)
    local = torch.stack(list(full_local.values())).to(torch.uint8)  # (M, b): gloo reduces no bools
    parts = [torch.empty_like(local) for _ in range(world.size)]
    dist.all_gather(parts, local)
    full = rearrange(torch.stack(parts).cpu().bool(), "w m b -> m (b w)")
    return {m: full[i] for i, m in enumerate(Modality) if full[i].any()}  # a modality absent everywhere: no key
