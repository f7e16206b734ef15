"""Reading and writing lhotse CutSets under the data contract (docs/design.md).

Every manifest is written to a temporary name in the same directory and renamed, so a
killed process never leaves a half-written file where a finished one is expected.
"""
from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Iterable, Iterator

from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.serialization import deserialize_item

from udistil.errors import ManifestError


def _open_manifest(path: Path):
    """Binary line reader for .jsonl or .jsonl.gz (line numbers for error messages)."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def resolve_recording_paths(rec, manifest_dir: Path):
    """Make a recording's relative audio file paths absolute, relative to its manifest's directory.

    The one rule for every stage (stage 2 reads recordings, later stages cuts, all through
    this function): a relative path in a manifest means "beside the manifest", wherever
    the stage runs from; stages write absolute paths, so the resolution happens once.
    Commands and URLs are left alone.  Some lhotse recipes (Common Voice) write paths relative
    to the directory they ran in instead: when nothing is beside the manifest but the path
    exists from the current directory, that is the file meant.
    """
    if rec is not None:
        for src in rec.sources:
            if src.type == "file" and not os.path.isabs(src.source):
                beside = (Path(manifest_dir) / src.source).resolve()
                if not beside.exists() and Path(src.source).exists():
                    beside = Path(src.source).resolve()
                src.source = str(beside)
    return rec


def resolve_audio_paths(cut: Cut, manifest_dir: Path) -> Cut:
    """A cut's recording with resolve_recording_paths applied."""
    resolve_recording_paths(getattr(cut, "recording", None), manifest_dir)
    return cut


def iter_cuts(path: str | os.PathLike) -> Iterator[Cut]:
    """Stream a CutSet manifest cut by cut (memory bounded by one cut, not the corpus).

    Every failure becomes a ManifestError naming the file and the line (or cut id): a line
    that is not a cut, a truncated or broken gzip, text that is not UTF-8, a cut without
    exactly one supervision, a cut id seen twice.  Relative audio paths are resolved
    against the manifest's directory (resolve_audio_paths).
    """
    path = _existing_manifest(path)
    seen: set[str] = set()
    lineno = 0
    try:
        with _open_manifest(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    cut = deserialize_item(json.loads(raw))
                except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError,
                        AttributeError) as e:
                    raise ManifestError(f"{path}:{lineno}: not a lhotse cut ({type(e).__name__}: "
                                        f"{str(e)[:200]})") from e
                _check_cut(path, cut, seen)
                yield resolve_audio_paths(cut, path.parent)
    except (OSError, EOFError, zlib.error) as e:
        raise ManifestError(f"{path}: cannot read manifest after line {lineno} ({e}); it may be truncated") from e


def _existing_manifest(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    if path.stat().st_size == 0:
        raise ManifestError(f"{path}: manifest is empty (0 bytes); re-run the stage that writes it")
    return path


def _check_cut(path: Path, cut, seen: set[str]) -> None:
    if not isinstance(cut, Cut):
        raise ManifestError(f"{path}: item {getattr(cut, 'id', '?')} is a {type(cut).__name__}, not a cut")
    if len(cut.supervisions) != 1:
        raise ManifestError(
            f"{path}: cut {cut.id} has {len(cut.supervisions)} supervisions; "
            "the data contract wants exactly one per cut"
        )
    if cut.id in seen:
        raise ManifestError(f"{path}: cut id {cut.id} appears more than once; ids must be unique")
    seen.add(cut.id)


def read_cuts(path: str | os.PathLike) -> CutSet:
    """Load a CutSet eagerly (see iter_cuts for the checks); for sets that fit in memory."""
    return CutSet.from_cuts(iter_cuts(path))


def count_cuts(path: str | os.PathLike) -> int:
    return sum(1 for _ in iter_cuts(path))


def write_cuts(cuts: Iterable[Cut], path: str | os.PathLike) -> Path:
    """Write atomically (temporary file in the same directory, then rename), streaming.

    gzip headers carry no timestamp, so the same cuts always give the same bytes (the
    fingerprints of downstream outputs hash their inputs' content).
    """
    return write_json_lines((json.dumps(c.to_dict(), ensure_ascii=False) for c in cuts), path)


def write_json_lines(lines: Iterable[str], path: str | os.PathLike) -> Path:
    """Write JSON lines (already serialised) to `path` atomically; gzip when it ends in .gz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as raw:
            fh = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if path.suffix == ".gz" else raw
            for line in lines:
                fh.write(line.rstrip("\n").encode("utf-8") + b"\n")
            if fh is not raw:
                fh.close()
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is not None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e  # a full disk names no file by itself
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
