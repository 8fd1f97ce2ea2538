"""Where and how a run computes: the device, the torchrun processes, the fast-path switches, seeding."""
from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import check_choice
from nbn_tutorial.train.config import DEVICES, Config


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a torchrun job (world_size 1 when not distributed)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and writes the run directory."""
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """WORLD_SIZE, RANK and LOCAL_RANK as torchrun sets them (defaults: a single process)."""
    try:
        info = DistInfo(int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise UserError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers; launch with torchrun") from None
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise UserError(f"RANK={info.rank} does not fit WORLD_SIZE={info.world_size}; launch with torchrun")
    return info


def resolve_device(choice: str = "auto", local_rank: int = 0, option: str = "device=") -> torch.device:
    """``auto`` -> CUDA when available else CPU; under DDP each process takes GPU ``local_rank``.

    ``option`` is how the user spells the choice where it was made (the config key ``device=``, or
    ``--device `` for evaluate), so the advice names something that exists there.
    """
    check_choice("device", choice, DEVICES)
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"{option}cuda asks for a GPU but no CUDA GPU is visible; use {option}cpu or {option}auto")
    if local_rank >= torch.cuda.device_count():
        raise UserError(f"process LOCAL_RANK={local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                        "use --nproc-per-node <= the number of GPUs")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@dataclass(frozen=True)
class Runtime:
    """The resolved fast-path switches for one device."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile_mode: str | None          # None: eager; "default", "reduce-overhead" or "max-autotune"
    compile_backend: str
    cudnn_benchmark: bool
    fused_sgd: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to ``amp_dtype`` (parameters stay fp32), or nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        """One line naming every switch."""
        amp = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[self.amp_dtype]
        compiled = f"compile {self.compile_mode} ({self.compile_backend})" if self.compile_mode else "eager"
        return (f"device {self.device} · {amp} · {'channels_last' if self.channels_last else 'contiguous'} · "
                f"{compiled} · {'fused' if self.fused_sgd else 'foreach'} SGD"
                + (" · cudnn.benchmark" if self.cudnn_benchmark else ""))


def _auto(value: bool | str, on_cuda: bool) -> bool:
    return on_cuda if value == "auto" else bool(value)


def _amp_dtype(config: Config, cuda: bool) -> torch.dtype | None:
    """The autocast dtype: auto is bf16 on CUDA GPUs that support it, else off."""
    amp = config.amp
    if amp == "auto":
        amp = "bf16" if cuda and torch.cuda.is_bf16_supported() else "off"
    if amp == "fp16" and not cuda:
        raise UserError("amp=fp16 needs a CUDA device (its GradScaler is CUDA-only); use amp=bf16 or amp=off on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


def _compile_mode(config: Config, cuda: bool) -> str | None:
    """The torch.compile mode (None: eager), after checking the device and backend support it."""
    mode = {"auto": "default" if cuda else None, "off": None, "on": "default"}.get(config.compile, config.compile)
    if mode == "reduce-overhead" and not cuda:
        raise UserError("compile=reduce-overhead uses CUDA graphs and needs a CUDA device; use compile=default or off")
    if mode is not None:
        from torch._dynamo import list_backends   # deferred: torch.compile's machinery: heavy, only when compiling

        if config.compile_backend not in list_backends(exclude_tags=()):
            raise UserError(f"unknown compile_backend {config.compile_backend!r}; use inductor (the default), "
                            "or eager or aot_eager to debug compilation")
    return mode


def resolve_runtime(config: Config, device: torch.device) -> Runtime:
    """Turn the config's auto/on/off switches into concrete settings for ``device``."""
    cuda = device.type == "cuda"
    amp_dtype = _amp_dtype(config, cuda)
    mode = _compile_mode(config, cuda)
    return Runtime(device=device, amp_dtype=amp_dtype, channels_last=_auto(config.channels_last, cuda),
                   compile_mode=mode, compile_backend=config.compile_backend,
                   cudnn_benchmark=_auto(config.cudnn_benchmark, cuda),
                   fused_sgd=_auto(config.fused_sgd, device.type in ("cuda", "cpu")))


@contextlib.contextmanager
def process_group(info: DistInfo, device: torch.device) -> Iterator[None]:
    """Initialise the torchrun process group for this run (if not already done) and destroy it after."""
    if not info.enabled or dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=info.rank, world_size=info.world_size)
    try:
        yield
        # Every rank done communicating before the group goes: a rank that destroys it while a peer still has
        # gloo work in flight can abort at exit ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` torch CPU threads inside the block (None: leave torch's setting alone)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
