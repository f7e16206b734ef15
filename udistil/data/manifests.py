"""Reading and writing lhotse CutSets under the data contract (DESIGN.md).

Every manifest is written to a temporary name in the same directory and renamed, so a
killed process never leaves a half-written file where a finished one is expected.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterable

from lhotse import CutSet
from lhotse.cut import Cut

from udistil.errors import ManifestError


def read_cuts(path: str | os.PathLike) -> CutSet:
    """Load a CutSet eagerly, turning every failure into a ManifestError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    if path.stat().st_size == 0:
        raise ManifestError(f"{path}: manifest is empty (0 bytes); re-run the stage that writes it")
    try:
        cuts = CutSet.from_file(path).to_eager()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ManifestError(f"{path}: cannot read manifest ({e}); it may be truncated") from e
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{path}: not a valid lhotse CutSet manifest ({type(e).__name__}: {e})") from e
    for cut in cuts:
        if len(cut.supervisions) != 1:
            raise ManifestError(
                f"{path}: cut {cut.id} has {len(cut.supervisions)} supervisions; "
                "the data contract wants exactly one per cut"
            )
    return cuts


def write_cuts(cuts: Iterable[Cut], path: str | os.PathLike) -> Path:
    """Write atomically: temporary file in the same directory, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".jsonl.gz"
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        CutSet.from_cuts(cuts).to_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def supervision(cut: Cut):
    """The single supervision of a cut (the data contract guarantees one)."""
    return cut.supervisions[0]


def custom(cut: Cut) -> dict:
    """The supervision's custom dict, created on first use."""
    sup = supervision(cut)
    if sup.custom is None:
        sup.custom = {}
    return sup.custom


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write UTF-8 text to a temporary name in the same directory, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json_atomic(obj, path: str | os.PathLike) -> Path:
    return write_text_atomic(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", path)
