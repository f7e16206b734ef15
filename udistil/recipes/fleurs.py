"""FLEURS (Google; CC-BY 4.0), one language config such as ar_eg or sw_ke.

Two layouts are accepted, because users have FLEURS in one of these two forms:

  lhotse's download (`lhotse download fleurs`, i.e. lhotse.recipes.fleurs.download_fleurs):
    <fleurs_dir>/<config>/{train,dev,test}/*.wav
    <fleurs_dir>/metadata/<config>/{train,dev,test}.tsv
  the google/fleurs dataset repository, with its audio tarballs extracted in place:
    <fleurs_dir>/data/<config>/audio/{train,dev,test}/*.wav   (or <fleurs_dir>/<config>/audio/...)
    <fleurs_dir>/data/<config>/{train,dev,test}.tsv

Both tsv files have the same seven tab-separated columns and no header: id (of the
sentence, shared by its several readings), file name, raw transcription, normalised
transcription, characters, number of samples, gender.  The ids are lhotse's
(`<sentence id>_<n>_<file stem>`, n counting the readings of a sentence), so manifests made
with lhotse's FLEURS recipe stay comparable.  The supervision text is FLEURS' normalised
transcription (lower case, no punctuation); the raw one is kept in custom["raw_text"].  The
language written is the Whisper code ("ar"), not the config ("ar_eg").

Quirks handled: a byte-order mark or CRLF ends in a tsv; a file listed but absent (an audio
tarball not fully extracted) or unreadable is skipped with one log line and counted; a line
without the seven columns stops, naming the tsv and line.
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lhotse import Recording, SupervisionSegment

from udistil.errors import UdistilError
from udistil.recipes.common import require, write_set

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
LAYOUT = ("<fleurs_dir>/<config>/{train,dev,test}/*.wav with <fleurs_dir>/metadata/<config>/{train,dev,test}.tsv "
          "(lhotse's download), or <fleurs_dir>/data/<config>/audio/{train,dev,test}/*.wav with "
          "<fleurs_dir>/data/<config>/{train,dev,test}.tsv (the google/fleurs repository, tarballs extracted)")


def find_split(fleurs_dir: Path, config: str, split: str) -> tuple[Path, Path]:
    """(tsv, audio directory) of `config`/`split` in either published layout (module docstring)."""
    if (fleurs_dir / "metadata" / config).is_dir() and (fleurs_dir / config).is_dir():
        return (require(fleurs_dir / "metadata" / config / f"{split}.tsv", f"FLEURS {config} {split}.tsv", LAYOUT),
                require(fleurs_dir / config / split, f"FLEURS {config} {split} audio directory", LAYOUT))
    for repo_dir in (fleurs_dir / "data" / config, fleurs_dir / config):
        if (repo_dir / "audio").is_dir():
            break
    else:
        raise UdistilError(f"{fleurs_dir}: no FLEURS config {config} found. Expected layout: {LAYOUT}")
    tsv = require(repo_dir / f"{split}.tsv", f"FLEURS {config} {split}.tsv", LAYOUT)
    audio = repo_dir / "audio" / split
    if not audio.is_dir():
        tarball = audio.with_suffix(".tar.gz")
        hint = f" (extract {tarball} there first)" if tarball.exists() else ""
        raise UdistilError(f"{audio}: FLEURS {config} {split} audio directory not found{hint}. "
                           f"Expected layout: {LAYOUT}")
    return tsv, audio


def read_tsv(tsv: Path) -> list[tuple[int, list[str]]]:
    """(line number, the seven columns) of a FLEURS tsv."""
    try:
        text = tsv.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UdistilError(f"{tsv}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        values = line.rstrip("\r\n").split("\t")
        if len(values) != 7:
            raise UdistilError(f"{tsv}:{number}: {len(values)} tab-separated columns, not FLEURS' seven (id, file, "
                               "raw transcription, transcription, characters, samples, gender)")
        rows.append((number, values))
    return rows


def _recording(path: Path) -> Recording | str:
    if not path.is_file():
        return "not found (audio tarball not fully extracted?)"
    try:
        return Recording.from_file(path, recording_id=path.stem)
    except Exception as e:  # soundfile/audioread raise many types for a bad file
        return f"cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''})"


def prepare_fleurs_split(fleurs_dir, config: str, split: str, out_dir, prefix: str, set_name: str, language: str,
                         num_jobs: int = 1, work_dir=None) -> Counter:
    """Write the manifests of FLEURS `config` (e.g. ar_eg) `split` as set `set_name`, language `language`.

    Returns the skipped-file counts; work_dir is not used (kept for the command line)."""
    if split not in SPLITS:
        raise UdistilError(f"FLEURS split must be one of {SPLITS}, not {split!r}")
    fleurs_dir = require(fleurs_dir, "FLEURS directory", LAYOUT)
    tsv, audio_dir = find_split(fleurs_dir, config, split)
    rows = read_tsv(tsv)
    with ThreadPoolExecutor(max_workers=max(1, num_jobs)) as pool:
        results = list(pool.map(_recording, (audio_dir / f"{Path(v[1]).stem}.wav" for _, v in rows)))
    readings: Counter = Counter()
    recordings, supervisions, skipped = {}, [], Counter()
    for (number, (sentence_id, fname, raw, norm, _chars, _samples, gender)), rec in zip(rows, results):
        readings[sentence_id] += 1
        if isinstance(rec, str):
            skipped["missing audio" if rec.startswith("not found") else "unreadable audio"] += 1
            log.warning("skipping %s:%d: %s %s", tsv, number, audio_dir / f"{Path(fname).stem}.wav", rec)
            continue
        recordings[rec.id] = rec
        supervisions.append(SupervisionSegment(
            id=f"{sentence_id}_{readings[sentence_id]}_{rec.id}", recording_id=rec.id, start=0.0,
            duration=rec.duration, channel=0, text=norm.strip(), language=language,
            speaker=f"{sentence_id}_{readings[sentence_id]}", gender=gender.strip() or None,
            custom={"raw_text": raw.strip()}))
    if skipped:
        log.warning("%s: skipped %d files not found and %d unreadable (one line each above) of %d listed",
                    tsv, skipped["missing audio"], skipped["unreadable audio"], len(rows))
    write_set(recordings.values(), supervisions, out_dir, prefix, set_name, language,
              f"FLEURS {config} {split} ({fleurs_dir})")
    return skipped
