"""kill -9 at seeded random moments inside a stage, then rerun: the shared machinery of
tests/faults/test_kills.py and benchmarks/faults.py.

A "moment" is drawn by a seeded generator: after k finished cuts have reached the stage's
partial file (k uniform over the cuts still to do), plus a random delay of up to 0.3 s,
so kills land before, inside and between writes.  Each stage runs as the real `udistil`
command line in its own process, with a chunk of 2 cuts for stage 3 / 7 (so there are
moments between chunks to land in; the production value is only larger).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The udistil entry point, with stage 3's chunk made small so a handful of cuts has many
# moments to be killed in.
LAUNCH = ("import sys, udistil.teacher.pseudo_label as pl; pl.CHUNK_CUTS = 2; "
          "from udistil.bin.main import main; sys.exit(main(sys.argv[1:]))")


def command(*args) -> list[str]:
    return [sys.executable, "-c", LAUNCH, *map(str, args)]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def run_killed(cmd: list[str], partial: Path, rng: random.Random, total: int, timeout: float = 600) -> str:
    """Start `cmd`, kill -9 it at a random moment; return where it died ('after N cuts' or
    'finished first' when the stage ended before the moment came)."""
    done = lines(partial)
    target = rng.randint(done, max(done, total - 2))
    delay = rng.uniform(0.0, 0.3)
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if lines(partial) >= target:
                time.sleep(delay)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait()
    if proc.returncode != -signal.SIGKILL:
        return "finished first"
    return f"after {lines(partial)} of {total} cuts"


def run_in_process(*args) -> None:
    """The same command line in this process (no start-up cost): the uninterrupted reference."""
    import udistil.teacher.pseudo_label as pl
    from udistil.bin.main import main

    chunk, pl.CHUNK_CUTS = pl.CHUNK_CUTS, 2
    try:
        rc = main([str(a) for a in args])
    finally:
        pl.CHUNK_CUTS = chunk
    if rc != 0:
        raise AssertionError(f"udistil {' '.join(map(str, args))} failed with {rc}")


def run_to_end(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"rerun failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def manifest_rows(path: Path, drop=("filter_seconds",)) -> list[dict]:
    """A manifest as comparable dicts (per-cut timings, which no two runs share, left out)."""
    from udistil.data.manifests import iter_cuts

    rows = []
    for cut in iter_cuts(path):
        d = cut.to_dict()
        for sup in d.get("supervisions", []):
            for key in drop:
                (sup.get("custom") or {}).pop(key, None)
        rows.append(d)
    return rows


def decode_rows(out_dir: Path) -> tuple[list[dict], dict]:
    hyps = [json.loads(line) for line in (out_dir / "hyps.jsonl").read_text().splitlines()]
    wer = json.loads((out_dir / "wer.json").read_text())
    return hyps, {k: v for k, v in wer.items() if k not in ("wall_s", "rtf_inverse", "speed")}


def kill_and_resume(cmd: list[str], partial: Path, total: int, kills: int, seed: int) -> list[str]:
    """Kill the stage `kills` times at seeded random moments, then let it finish."""
    rng = random.Random(seed)
    where = [run_killed(cmd, partial, rng, total) for _ in range(kills)]
    run_to_end(cmd)
    return where
