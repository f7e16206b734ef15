"""DDP set-up under torchrun (NCCL on GPUs, gloo on CPUs) and the few collectives we need."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_sum(self, values: list[float]) -> list[float]:
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def all_true(self, flag: bool) -> bool:
        """True when every rank says True (e.g. 'I still have a batch')."""
        if not self.distributed:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    @property
    def comm_device(self) -> torch.device:
        # NCCL only moves CUDA tensors; gloo only CPU ones.
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def process_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """This process's device for a --device choice: cuda:LOCAL_RANK (one GPU per torchrun
    process) or cpu; "cuda" without a visible GPU is an error (models/device.py)."""
    from udistil.errors import UdistilError
    from udistil.models.device import resolve_device

    kind = resolve_device(device).type
    if kind != "cuda":
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise UdistilError(f"process with LOCAL_RANK {local_rank} has no GPU of its own: "
                           f"{torch.cuda.device_count()} visible; start at most that many per node")
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "auto") -> DistEnv:
    """Read torchrun's environment; a plain `python` run is world size 1 on cuda:0 or cpu."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = process_device(device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank, world_size, local_rank, device)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class StopSignal:
    """SIGTERM (Slurm's --signal before the time limit or a preemption, scancel, torchrun
    passing one on) asks training to stop at the end of the current optimizer step, after a
    checkpoint, instead of dying mid-step; `requested` is agreed by every rank."""

    def __init__(self):
        self.received = False
        self._previous = None

    def __enter__(self) -> "StopSignal":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():  # handlers live in the main thread
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum, frame) -> None:
        self.received = True

    def requested(self, env: DistEnv) -> bool:
        return not env.all_true(not self.received)
