"""What produced a resumable output, recorded beside it so stale work is never reused silently.

Every output that a later run may skip or resume (a finished shard, its `.partial.jsonl`,
a split directory, a merged manifest, a stage marker) gets `<out>.fingerprint.json`:

    {"inputs": [{"path", "size", "sha256"}...], "model": {...} | null, "options": {...}}

Inputs are identified by content (sha256; manifests are small next to the work they
cause), so a rerun that rewrites an identical file still matches, and a copied `exp/`
still resumes.  A model directory is identified by its config files (content) and each
weight file's name, size and a hash of its first and last MiB: cheap on a 3 GB teacher,
and two different checkpoints never agree on all of it.  `options` holds only the options
that change results (beam, packing, filter settings), never threads or batch sizes.

    fp = fingerprint([in_path], model=spec, options={"beam": 4})
    check_or_write(out_path, fp, redo=False)

`check_or_write` passes when the recorded fingerprint matches (or nothing exists yet and
it records it), and otherwise stops with one line that names the file, says what differs
and how to redo it; with `redo=True` it deletes the stale output (and its partial file)
and records the new fingerprint instead.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from udistil.errors import UdistilError

logger = logging.getLogger(__name__)

SUFFIX = ".fingerprint.json"
# Files written beside an output that belong to it (removed with it on a redo).
COMPANIONS = (".partial.jsonl", ".stats.json")
_EDGE = 1 << 20  # bytes hashed at each end of a large weight file
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".npz")


class StaleOutputError(UdistilError):
    """An output exists but was produced from other inputs, model or options."""


def _sha256(path: Path, limit: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if limit is None:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(fh.read(limit))
            size = path.stat().st_size
            if size > 2 * limit:
                fh.seek(size - limit)
                h.update(fh.read(limit))
    return h.hexdigest()


def file_identity(path: str | os.PathLike) -> dict:
    """A file's path, size and content hash (a missing file says so instead of raising)."""
    path = Path(path)
    if not path.is_file():
        return {"path": str(path), "missing": True}
    return {"path": str(path), "size": path.stat().st_size, "sha256": _sha256(path)}


def model_identity(model: str | os.PathLike | None) -> dict | None:
    """A model spec (hub id, packaged:NAME) as given; a local directory by its files."""
    if model is None:
        return None
    path = Path(model)
    if not path.is_dir():
        return {"spec": str(model)}
    files = {}
    # Top-level files only: a model folder is flat (weights, config, tokenizer), and what a
    # run keeps under it (an init student's decode_*/ and log/) must not change its identity.
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        rel = f.name
        if f.suffix in _WEIGHT_SUFFIXES:
            files[rel] = {"size": f.stat().st_size, "edges_sha256": _sha256(f, limit=_EDGE)}
        elif f.suffix == ".json" and f.stat().st_size < (16 << 20):
            files[rel] = {"sha256": _sha256(f)}
    return {"dir": str(path), "files": files}


def fingerprint(inputs: list[str | os.PathLike], model: str | os.PathLike | None = None,
                options: dict | None = None) -> dict:
    """The fingerprint of an output made from `inputs` by `model` with `options`."""
    return {"inputs": [file_identity(p) for p in inputs], "model": model_identity(model),
            "options": json.loads(json.dumps(options or {}, sort_keys=True, default=str))}


def fingerprint_path(out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + SUFFIX)


def read_fingerprint(out_path) -> dict | None:
    path = fingerprint_path(out_path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UdistilError(f"{path}: unreadable fingerprint ({e}); delete it and {Path(out_path).name} to redo") from e


def _comparable(fp: dict) -> dict:
    """Inputs compare by content, not by where they were read from (a moved exp/ still matches)."""
    inputs = [{k: v for k, v in i.items() if k != "path"} for i in fp.get("inputs", [])]
    model = dict(fp.get("model") or {})
    model.pop("dir", None)
    return {"inputs": inputs, "model": model or None, "options": fp.get("options", {})}


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable list of what changed between two fingerprints."""
    a, b = _comparable(old), _comparable(new)
    out = []
    if a["inputs"] != b["inputs"]:
        names = [i.get("path", "?") for i in new.get("inputs", [])]
        out.append(f"input {', '.join(names)} changed")
    if a["model"] != b["model"]:
        out.append("model changed")
    old_opts, new_opts = _flat(a["options"]), _flat(b["options"])
    for key in sorted(set(old_opts) | set(new_opts)):
        if old_opts.get(key) != new_opts.get(key):
            out.append(f"{key} {old_opts.get(key)!r} -> {new_opts.get(key)!r}")
    return out


def _flat(options: dict, prefix: str = "") -> dict:
    """{"fusion": {"language_prior": 0.5}} -> {"fusion.language_prior": 0.5} (for messages)."""
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict) and value and not ({"spec", "dir", "files"} & set(value)):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def remove_output(out_path: str | os.PathLike) -> None:
    """Delete an output with its partial file, stats and fingerprint (not its lock)."""
    out_path = Path(out_path)
    for path in [out_path] + [out_path.with_name(out_path.name + s) for s in COMPANIONS + (SUFFIX,)]:
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def has_work(out_path: str | os.PathLike) -> bool:
    out_path = Path(out_path)
    return out_path.exists() or out_path.with_name(out_path.name + ".partial.jsonl").exists()


# What a stale-output error tells the user to do.  Users meet it through run.sh, whose
# option takes a value (`--redo-stale true`); a udistil action alone takes the bare flag.
REDO_HINT = "rerun run.sh with --redo-stale true (a udistil action alone: --redo-stale)"


def check_or_write(out_path: str | os.PathLike, fp: dict, redo: bool = False,
                   redo_hint: str = REDO_HINT) -> bool:
    """Make sure existing work at `out_path` was made as `fp` says; record `fp` for new work.

    Returns True when work made with this fingerprint may be reused (or resumed), False
    when there was none (or it was stale and `redo` removed it).  Raises StaleOutputError
    when stale work exists and `redo` is False.
    """
    out_path = Path(out_path)
    old = read_fingerprint(out_path)
    if old is not None and not differences(old, fp):
        if has_work(out_path):
            return True
    elif has_work(out_path):
        why = "; ".join(differences(old, fp)) if old is not None else "it has no fingerprint (written by hand or an older udistil)"
        if not redo:
            raise StaleOutputError(f"{out_path}: made from other inputs or options ({why}); "
                                   f"{redo_hint}, or delete it, to redo it")
        logger.warning("%s: stale (%s); removing it to redo", out_path, why)
        remove_output(out_path)
    from udistil.data.manifests import write_json_atomic

    write_json_atomic(fp, fingerprint_path(out_path))
    return False


def check_marker(marker: str | os.PathLike, options: dict, inputs: list | None = None,
                 redo: bool = False, redo_hint: str = REDO_HINT) -> bool:
    """A stage's `.done` marker holding the fingerprint of what the stage was run with.

    True: the marker exists and matches (skip the stage).  False: no marker, or a stale one
    removed because `redo` (run the stage, then `write_marker`).  A stale marker without
    `redo` raises StaleOutputError naming it.
    """
    marker = Path(marker)
    fp = fingerprint(inputs or [], options=options)
    if not marker.exists():
        return False
    try:
        old = json.loads(marker.read_text(encoding="utf-8") or "null")
    except ValueError:
        old = None
    why = "; ".join(differences(old, fp)) if isinstance(old, dict) else "it records no fingerprint"
    if isinstance(old, dict) and not differences(old, fp):
        return True
    if not redo:
        raise StaleOutputError(f"{marker}: the stage was run with other options ({why}); {redo_hint}, "
                               f"or delete {marker.parent}, to redo it")
    logger.warning("%s: stale (%s); the stage runs again", marker, why)
    marker.unlink()
    return False


def write_marker(marker: str | os.PathLike, options: dict, inputs: list | None = None) -> None:
    from udistil.data.manifests import write_json_atomic

    write_json_atomic(fingerprint(inputs or [], options=options), marker)
