"""Stage-1 manifests: lhotse RecordingSet / SupervisionSet files, read and written safely.

Every corpus importer (mini synthesis, Kaldi data dir, ...) writes the same pair of files,
named the lhotse way, which stage 2 (`udistil prepare-cuts`) turns into CutSets:

    <out_dir>/<prefix>_recordings[_<split>].jsonl.gz
    <out_dir>/<prefix>_supervisions[_<split>].jsonl.gz

They are written deterministically (sorted keys are *not* imposed, but the gzip header
carries no timestamp and no file name), so the same input gives byte-identical files and a
recipe can check reproducibility with `cmp`.  Writes go to a temporary name and are renamed.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from lhotse import RecordingSet, SupervisionSet

from udistil.errors import ManifestError


def manifest_path(out_dir, prefix: str, kind: str, split: str | None = None) -> Path:
    """`<out_dir>/<prefix>_<kind>[_<split>].jsonl.gz`; kind is 'recordings' or 'supervisions'."""
    name = f"{prefix}_{kind}" + (f"_{split}" if split else "") + ".jsonl.gz"
    return Path(out_dir) / name


def write_manifest_deterministic(items: Iterable, path) -> Path:
    """Write lhotse manifest items (anything with .to_dict()) as jsonl.gz, atomically.

    gzip.open would stamp the current time into the header, so two identical runs would
    differ by a few bytes; mtime=0 and an empty file name make the output reproducible.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            for item in items:
                line = json.dumps(item.to_dict(), ensure_ascii=False) + "\n"
                gz.write(line.encode("utf-8"))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _read(path, loader, what: str):
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: {what} manifest not found")
    if path.stat().st_size == 0:
        raise ManifestError(f"{path}: {what} manifest is empty (0 bytes); re-run stage 1")
    try:
        # to_eager() forces every line to be parsed here, so a truncated gzip or a bad
        # line fails now, with the file name, rather than halfway through stage 2.
        return loader(path).to_eager()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ManifestError(f"{path}: cannot read {what} manifest ({e}); it may be truncated") from e
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AssertionError) as e:
        raise ManifestError(
            f"{path}: not a valid lhotse {what} manifest ({type(e).__name__}: {e})") from e


def read_recordings(path) -> RecordingSet:
    """Load a RecordingSet eagerly; any failure becomes a ManifestError naming the file.

    Relative audio paths are resolved against the manifest's directory, as for cuts."""
    from udistil.data.manifests import resolve_recording_paths

    recordings = _read(path, RecordingSet.from_file, "recording")
    for rec in recordings:
        resolve_recording_paths(rec, Path(path).parent)
    return recordings


def read_supervisions(path) -> SupervisionSet:
    """Load a SupervisionSet eagerly; any failure becomes a ManifestError naming the file."""
    return _read(path, SupervisionSet.from_file, "supervision")


def iter_manifest_items(path, what: str) -> Iterator[tuple[int, str, dict]]:
    """A lhotse manifest's items streamed as (line number, JSON line, parsed dict), so that a
    reader can keep only the items it needs, compactly.  The same checks as the eager readers,
    with the line named: missing, empty, truncated, a line that is not JSON or has no id.
    Manifests that are not JSON lines (.json, .yaml) are read eagerly and re-serialised."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: {what} manifest not found")
    if path.stat().st_size == 0:
        raise ManifestError(f"{path}: {what} manifest is empty (0 bytes); re-run stage 1")
    if not (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")):
        loader = RecordingSet.from_file if what == "recording" else SupervisionSet.from_file
        for number, item in enumerate(_read(path, loader, what), 1):
            data = item.to_dict()
            yield number, json.dumps(data, ensure_ascii=False), data
        return
    from udistil.data.manifests import _open_manifest

    number = 0
    try:
        with _open_manifest(path) as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                line = raw.decode("utf-8")
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ManifestError(f"{path}: line {number} is not valid JSON ({e}); "
                                        f"not a valid lhotse {what} manifest") from e
                if not isinstance(data, dict) or not isinstance(data.get("id"), str):
                    raise ManifestError(f"{path}: line {number} has no {what} id; "
                                        f"not a valid lhotse {what} manifest")
                yield number, line.rstrip("\n"), data
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read {what} manifest after line {number} ({e}); "
                            "it may be truncated") from e
