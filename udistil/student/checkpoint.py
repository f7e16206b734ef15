"""Training checkpoints (exact resume) and the transformers export of the best student.

A checkpoint is a directory `EXP/checkpoints/step-NNNNNNN/` holding
- `state.pt`: the student weights training changes, optimizer, scheduler, grad scaler, step,
  epoch, the number of batches of that epoch already trained on (the sampler position) and
  the best dev loss.  Frozen weights (a frozen encoder, frozen embeddings) are not copied into
  every checkpoint: `frozen` records their names, the student init directory they come from
  and a digest, which a resume checks before taking them from there (trainer.py);
- `rng-rank{R}.pt`: every random generator of rank R (python, numpy, torch, CUDA), so
  dropout and anything else random continue exactly as in an uninterrupted run.
It is written under a temporary name and renamed when complete, so `latest_checkpoint`
never returns a half-written one; only the newest `keep` are kept.
"""
from __future__ import annotations

import logging
import os
import random
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_root(exp_dir) -> Path:
    return Path(exp_dir) / "checkpoints"


def list_checkpoints(exp_dir) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_root(exp_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / "state.pt").is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(exp_dir) -> Path | None:
    found = list_checkpoints(exp_dir)
    return found[-1] if found else None


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _run_tag(world_size: int) -> str:
    """A temp-dir suffix that is the same on every rank of one run and differs between two
    runs, so a second run in the same exp/ never deletes the first one's half-written
    checkpoint.  One process: its pid; under torchrun: the rendezvous (host:port is unique
    while the run lives; the run id when torchrun gives one)."""
    if world_size <= 1:
        return f"{socket.gethostname()}-{os.getpid()}"
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id and run_id != "none":
        return run_id
    return f"{os.environ.get('MASTER_ADDR', 'local')}-{os.environ.get('MASTER_PORT', '0')}"


def save_checkpoint(exp_dir, step: int, state: dict, rank: int, world_size: int, barrier) -> Path:
    """Every rank writes its RNG file, rank 0 the state; rank 0 then renames the directory."""
    root = checkpoint_root(exp_dir)
    final = root / f"step-{step:07d}"
    tmp = root / f".step-{step:07d}.tmp-{_run_tag(world_size)}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
    if rank == 0:
        torch.save(state, tmp / "state.pt.tmp")
        os.replace(tmp / "state.pt.tmp", tmp / "state.pt")
    barrier()
    if rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    barrier()
    return final


def prune_checkpoints(exp_dir, keep: int) -> None:
    for path in list_checkpoints(exp_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path, rank: int) -> tuple[dict, dict | None]:
    """(state, this rank's RNG state or None when the run had fewer ranks)."""
    from udistil.errors import UdistilError

    rng_file = path / f"rng-rank{rank}.pt"
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        rng = torch.load(rng_file, weights_only=False) if rng_file.is_file() else None
    except Exception as e:  # truncated zip, garbage pickle, unreadable file
        raise UdistilError(f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e)[:200]}); delete this "
                           "directory to resume from the one before it") from e
    return state, rng


def export_student(student, processor, out_dir, info: dict) -> Path:
    """Save the student as a transformers directory (loads in pipeline()), loadable at every instant.

    `out_dir` (EXP/best) is a symbolic link to a complete directory `.best-step-N` beside it.
    A new export is written in full under its own name, then the link is swapped with one
    rename, so a reader (a decode, an export, pipeline()) never finds `best` missing or half
    written; the previous directory is removed only after the swap.
    """
    from udistil.student.init import save_model_dir

    out = Path(out_dir)
    target = out.with_name(f".{out.name}-step-{int(info.get('step', 0)):07d}")
    save_model_dir(student, processor, target, extra_json={"udistil_training.json": info})
    previous = out.resolve() if out.is_symlink() else None
    if out.exists() and not out.is_symlink():
        # A real directory from an older layout: moved aside once, then the link takes over.
        previous = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, previous)
    link = out.with_name(f".{out.name}.link-{os.getpid()}")
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.name)
    os.replace(link, out)
    if previous is not None and previous != target.resolve() and previous.exists():
        shutil.rmtree(previous, ignore_errors=True)
    return out
