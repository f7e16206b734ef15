"""What every corpus module shares: the set manifests' names, layout checks, writing."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet, fix_manifests

from udistil.data.languages import check_language
from udistil.data.source_manifests import manifest_path, write_manifest_deterministic
from udistil.errors import UdistilError

log = logging.getLogger(__name__)


def set_manifest_paths(out_dir, prefix: str, set_name: str) -> tuple[Path, Path]:
    """<out_dir>/<prefix>_{recordings,supervisions}_<set>.jsonl.gz, the names run.sh stage 2 reads."""
    return (manifest_path(out_dir, prefix, "recordings", set_name),
            manifest_path(out_dir, prefix, "supervisions", set_name))


def require(path, what: str, layout_hint: str) -> Path:
    """Return `path` if it exists, else stop with a message naming it and the expected layout."""
    path = Path(path)
    if not path.exists():
        raise UdistilError(f"{path}: {what} not found. Expected layout: {layout_hint}")
    return path


def check_utf8(path: Path) -> None:
    """Stop naming `path` (the user's file) and the first line that is not UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise UdistilError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start}); convert the file "
                           f"with iconv (e.g. iconv -f latin1 -t utf-8) and run again") from e


def write_set(recordings: Iterable[Recording], supervisions: Iterable[SupervisionSegment],
              out_dir, prefix: str, set_name: str, language: str, source: str) -> tuple[Path, Path]:
    """Set every supervision's language, drop orphans (logged), and write the set's manifests.

    `source` names the corpus directory in messages.
    """
    language = check_language(language, f"language for {source}")
    recordings = RecordingSet.from_recordings(recordings)
    supervisions = SupervisionSet.from_segments(_set_language(s, language) for s in supervisions)
    n_rec, n_sup = len(recordings), len(supervisions)
    recordings, supervisions = fix_manifests(recordings, supervisions)
    if len(recordings) < n_rec or len(supervisions) < n_sup:
        log.warning("%s: %d recordings without supervisions and %d supervisions without recordings dropped",
                    source, n_rec - len(recordings), n_sup - len(supervisions))
    if len(supervisions) == 0:
        raise UdistilError(f"{source}: no utterances found for set {set_name}")
    rec_path, sup_path = set_manifest_paths(out_dir, prefix, set_name)
    # Supervisions first, recordings last: a prep script that checks for the recordings
    # manifest then never mistakes a half-written set for a prepared one.
    write_manifest_deterministic(supervisions, sup_path)
    write_manifest_deterministic(recordings, rec_path)
    log.info("%s -> set %s: %d recordings, %d utterances (%.2f h), language %s", source, set_name,
             len(recordings), len(supervisions), sum(s.duration for s in supervisions) / 3600, language)
    return rec_path, sup_path


def _set_language(sup: SupervisionSegment, language: str) -> SupervisionSegment:
    sup.language = language
    return sup
