"""Splitting a CutSet into JOB=1:N shards and merging them back.

Splitting is deterministic and contiguous (cut order preserved), so re-running a stage
with the same --nj maps every cut to the same shard and finished shards can be skipped.
"""
from __future__ import annotations

import logging
from pathlib import Path

from udistil.data.manifests import read_cuts, write_cuts
from udistil.errors import ManifestError

logger = logging.getLogger(__name__)


def shard_path(split_dir: str | Path, index: int) -> Path:
    return Path(split_dir) / f"cuts.{index}.jsonl.gz"


def split_cuts(in_path: str | Path, num_jobs: int, split_dir: str | Path) -> list[Path]:
    """Write split_dir/cuts.{1..N}.jsonl.gz; a split that already exists with N shards is kept."""
    if num_jobs < 1:
        raise ManifestError(f"--nj must be >= 1 (got {num_jobs})")
    split_dir = Path(split_dir)
    marker = split_dir / ".split_done"
    paths = [shard_path(split_dir, i) for i in range(1, num_jobs + 1)]
    if marker.exists() and marker.read_text().strip() == f"{Path(in_path).resolve()} {num_jobs}":
        return paths
    cuts = read_cuts(in_path)
    if len(cuts) < num_jobs:
        raise ManifestError(f"{in_path}: {len(cuts)} cuts cannot be split into {num_jobs} jobs; lower --nj")
    ids = list(cuts.ids)
    for i, path in enumerate(paths):
        lo, hi = (len(ids) * i) // num_jobs, (len(ids) * (i + 1)) // num_jobs
        write_cuts(cuts.subset(cut_ids=ids[lo:hi]), path)
    marker.write_text(f"{Path(in_path).resolve()} {num_jobs}\n")
    logger.info("split %d cuts from %s into %d shards under %s", len(ids), in_path, num_jobs, split_dir)
    return paths


def merge_cuts(in_paths: list[str | Path], out_path: str | Path) -> Path:
    """Concatenate shard manifests (in the given order) into one, refusing duplicate ids."""
    merged, seen = [], set()
    for path in in_paths:
        for cut in read_cuts(path):
            if cut.id in seen:
                raise ManifestError(f"{path}: cut {cut.id} appears in more than one shard")
            seen.add(cut.id)
            merged.append(cut)
    write_cuts(merged, out_path)
    logger.info("merged %d shards (%d cuts) into %s", len(in_paths), len(merged), out_path)
    return Path(out_path)
