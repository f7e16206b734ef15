"""Splitting a CutSet into JOB=1:N shards and merging them back, streaming.

Splitting is deterministic and contiguous (cut order preserved), so re-running a stage
with the same --nj maps every cut to the same shard and finished shards can be skipped.
Both steps record a fingerprint of what they read (udistil.parallel.fingerprint): a split
or a merge whose input changed is redone (they are cheap and deterministic), and the
shards' own fingerprints then stop any labelling or scoring made from the old split.
Memory holds one cut at a time (plus the ids, to refuse duplicates), not the corpus.
"""
from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

from udistil.data.manifests import count_cuts, iter_cuts, write_cuts, write_json_atomic
from udistil.errors import ManifestError
from udistil.parallel.fingerprint import differences, fingerprint, fingerprint_path, read_fingerprint
from udistil.parallel.lock import OutputLock

logger = logging.getLogger(__name__)

SPLIT_MARKER = ".split_done"


def shard_path(split_dir: str | Path, index: int) -> Path:
    return Path(split_dir) / f"cuts.{index}.jsonl.gz"


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing, or an older plain-text marker: split again


def split_cuts(in_path: str | Path, num_jobs: int, split_dir: str | Path) -> list[Path]:
    """Write split_dir/cuts.{1..N}.jsonl.gz; a split of the same input with the same N is kept."""
    if num_jobs < 1:
        raise ManifestError(f"--nj must be >= 1 (got {num_jobs})")
    split_dir = Path(split_dir)
    marker = split_dir / SPLIT_MARKER
    paths = [shard_path(split_dir, i) for i in range(1, num_jobs + 1)]
    fp = fingerprint([in_path], options={"nj": num_jobs})
    with OutputLock(split_dir):
        old = _read_marker(marker)
        if old is not None and not differences(old, fp) and all(p.exists() for p in paths):
            return paths
        if old is not None:
            logger.warning("%s: split made from another input or --nj (%s); splitting again",
                           split_dir, "; ".join(differences(old, fp)))
        marker.unlink(missing_ok=True)
        total = count_cuts(in_path)
        if total < num_jobs:
            raise ManifestError(f"{in_path}: {total} cuts cannot be split into {num_jobs} jobs; lower --nj")
        cuts = iter_cuts(in_path)
        for i, path in enumerate(paths):
            lo, hi = (total * i) // num_jobs, (total * (i + 1)) // num_jobs
            write_cuts(itertools.islice(cuts, hi - lo), path)
        write_json_atomic(fp, marker)
    logger.info("split %d cuts from %s into %d shards under %s", total, in_path, num_jobs, split_dir)
    return paths


def merge_cuts(in_paths: list[str | Path], out_path: str | Path) -> Path:
    """Concatenate shard manifests (in the given order) into one, refusing duplicate ids.

    A merge of the same shards (by content) is kept; otherwise it is redone."""
    out_path = Path(out_path)
    fp = fingerprint(in_paths)
    with OutputLock(out_path):
        old = read_fingerprint(out_path)
        if out_path.exists() and old is not None and not differences(old, fp):
            logger.info("%s is the merge of these shards already; kept", out_path)
            return out_path
        seen: set[str] = set()
        counter = [0]

        def merged():
            for path in in_paths:
                for cut in iter_cuts(path):
                    if cut.id in seen:
                        raise ManifestError(f"{path}: cut {cut.id} appears in more than one shard")
                    seen.add(cut.id)
                    counter[0] += 1
                    yield cut
        fingerprint_path(out_path).unlink(missing_ok=True)
        write_cuts(merged(), out_path)
        write_json_atomic(fp, fingerprint_path(out_path))
    logger.info("merged %d shards (%d cuts) into %s", len(in_paths), counter[0], out_path)
    return out_path
