"""Where a model runs and in what precision: the one definition of `--device` and `--dtype`.

Every action that runs a model (pseudo-label, decode, score, transcribe, distill) adds its
options with `add_device_arguments` and turns them into a `Placement` with
`placement_from_args`, so the choices, the defaults and what "auto" means are written once:

  --device auto      cuda when torch sees a GPU, else cpu
  --device cpu|cuda  as asked (cuda without a visible GPU is an error, not a silent CPU run)
  --dtype auto       float16 on cuda, float32 on cpu
  --dtype float32|float16|bfloat16
                     as asked; float16 on the CPU is refused (slow, and some CPU kernels
                     lack it); bfloat16 runs on the CPU (fast only where the CPU has bf16
                     instructions)

`cuda` means the current CUDA device: cuda:0, the GPU Slurm gives a job
(CUDA_VISIBLE_DEVICES), or cuda:LOCAL_RANK under torchrun.  Training (`udistil distill`)
takes --device only: its precision is the autocast choice --precision, with float32 weights.
"""
from __future__ import annotations

from dataclasses import dataclass

from udistil.errors import UdistilError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "float16", "bfloat16")


def add_device_arguments(parser, dtype: bool = True, device_help: str | None = None,
                         dtype_help: str | None = None) -> None:
    """Add --device (and, with dtype=True, --dtype) to an argparse parser or group."""
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help=device_help or "where the model runs: auto = cuda when a GPU is visible, else cpu")
    if dtype:
        parser.add_argument("--dtype", choices=DTYPES, default="auto",
                            help=dtype_help or "model weights and compute precision: auto = float16 on "
                            "cuda, float32 on cpu (float16 on cpu is refused)")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(name: str = "auto"):
    """torch.device for a --device choice."""
    import torch

    name = str(name or "auto")
    if name not in DEVICES:
        raise UdistilError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if cuda_available() else "cpu"
    elif name == "cuda" and not cuda_available():
        raise UdistilError("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is "
                           "False); use --device cpu or auto, or run where a GPU is visible")
    return torch.device(name)


def resolve_dtype(name: str | None, device):
    """torch.dtype for a --dtype choice on `device` (a torch.device or its name)."""
    import torch

    name = str(name or "auto")
    if name not in DTYPES:
        raise UdistilError(f"unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    if name == "auto":
        return torch.float16 if kind == "cuda" else torch.float32
    if name == "float16" and kind == "cpu":
        raise UdistilError("--dtype float16 is not supported on the CPU (slow, and some CPU kernels "
                           "lack it); use float32 (the CPU default) or bfloat16")
    return getattr(torch, name)


def dtype_name(dtype) -> str:
    """'float32' for torch.float32 (the spelling of --dtype)."""
    return str(dtype).replace("torch.", "")


@dataclass(frozen=True)
class Placement:
    """A resolved --device / --dtype pair."""

    device: object  # torch.device
    dtype: object   # torch.dtype

    @classmethod
    def resolve(cls, device: str = "auto", dtype: str | None = "auto") -> "Placement":
        dev = resolve_device(device)
        return cls(dev, resolve_dtype(dtype, dev))

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    def describe(self) -> str:
        return f"{self.device} {self.dtype_name}"


def placement_from_args(args) -> Placement:
    """The Placement of parsed arguments (a parser without --dtype gets the device's default)."""
    return Placement.resolve(getattr(args, "device", "auto"), getattr(args, "dtype", "auto"))
