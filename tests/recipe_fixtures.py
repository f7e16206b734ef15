"""Helpers for the recipe tests (tests/test_recipe_*.py): run a recipe's stages, read its cuts.

Each test builds a tiny corpus in that corpus's real on-disk layout and runs
`egs/<recipe>/run.sh --stage 1 --stop-stage 2` on it from a temporary working directory,
exactly as a user would from the recipe directory (outputs go to the current directory).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from udistil.data.manifests import read_cuts

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_recipe(recipe: str, workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", cmd_backend="local")
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "egs" / recipe / "run.sh"), "--stage", "1", "--stop-stage", "2",
         "--skip-install", "true", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"egs/{recipe}/run.sh failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def cuts_by_id(workdir: Path, set_name: str) -> dict:
    return {cut.id: cut for cut in read_cuts(workdir / "data" / f"cuts_{set_name}.jsonl.gz")}


def place(segments: list[np.ndarray], gap_s: float = 0.3, rate: int = 16000):
    """Concatenate speech with silence gaps; return (signal, [(start_s, end_s), ...])."""
    gap = np.zeros(int(gap_s * rate), dtype=np.float32)
    parts, times, t = [gap], [], gap_s
    for seg in segments:
        times.append((round(t, 2), round(t + len(seg) / rate, 2)))
        parts += [seg, gap]
        t += (len(seg) + len(gap)) / rate
    return np.concatenate(parts), times


def write_audio(path: Path, samples: np.ndarray, rate: int = 16000, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate, **kw)
    return path
