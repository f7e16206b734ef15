"""Mozilla Common Voice, any release, any language (the recipes use ar and sw).

Layout (one language of a release, unpacked as downloaded from commonvoice.mozilla.org):

    <cv_dir>/<lang>/clips/*.mp3
    <cv_dir>/<lang>/{train,dev,test}.tsv      (also validated/other/invalidated.tsv)

Each tsv is tab-separated with a header row; the columns read are `path` (the clip's file
name under clips/), `sentence` (the reference) and, where the release has them,
`client_id` (the speaker) and `locale` (the language; releases before CV 10 lack it).
Other columns (up_votes, age, gender, accents, variant, segment, sentence_id, ...) vary by
release and are ignored, so any release reads the same way.  Quotes are not special (the
sentences hold unbalanced ones); a UTF-8 byte-order mark and CRLF line ends (a tsv
re-saved by a spreadsheet) are accepted.

A clip listed but absent, or one that cannot be read, is skipped with one log line and
counted; a row whose `locale` is not the language asked for stops preparation (the wrong
language's folder).  The mp3s are decoded by libsndfile (soundfile >= 0.12 with libsndfile
>= 1.1 reads MP3; `check_mp3_support` says so clearly when it cannot); clips of any sample
rate (the releases mix 48, 44.1 and 32 kHz) are resampled to 16 kHz by stage 2.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lhotse import Recording, SupervisionSegment

from udistil.errors import UdistilError
from udistil.recipes.common import require, write_set

log = logging.getLogger(__name__)

LAYOUT = "<cv_dir>/<lang>/clips/*.mp3 and <cv_dir>/<lang>/{train,dev,test}.tsv"
REQUIRED_COLUMNS = ("path", "sentence")


def check_mp3_support() -> None:
    import soundfile as sf

    if "MP3" not in sf.available_formats():
        raise UdistilError(
            f"this soundfile/libsndfile cannot read MP3 (soundfile {sf.__version__}, libsndfile "
            f"{sf.__libsndfile_version__}); Common Voice clips are mp3: install soundfile>=0.12 "
            "(its wheel bundles libsndfile>=1.1 with MP3) via tools/install.sh")


def read_tsv(tsv: Path, language: str) -> list[tuple[int, dict]]:
    """(line number, row) of a Common Voice tsv, checked (module docstring)."""
    try:
        with open(tsv, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as e:
        raise UdistilError(f"{tsv}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    if not rows:
        raise UdistilError(f"{tsv}: empty file; expected a header row with {', '.join(REQUIRED_COLUMNS)}")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise UdistilError(f"{tsv}: no column {', '.join(missing)} in the header {header}; is this a Common Voice tsv?")
    out = []
    for number, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        row = dict(zip(header, (v.strip() for v in values)))
        if not row.get("path"):
            raise UdistilError(f"{tsv}:{number}: no clip in the path column")
        locale = row.get("locale")
        if locale and locale.split("-")[0] != language.split("-")[0]:
            raise UdistilError(f"{tsv}:{number}: locale {locale!r}, not {language!r}: is this the {language} "
                               "folder of the release?")
        out.append((number, row))
    return out


def _recording(clip: Path, clip_id: str) -> Recording | str:
    """The clip's Recording, or why it cannot be read."""
    if not clip.is_file():
        return "not found"
    try:
        return Recording.from_file(clip, recording_id=clip_id)
    except Exception as e:  # soundfile/audioread raise many types for a bad file
        return f"cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''})"


def prepare_common_voice_split(cv_dir, language: str, split: str, out_dir, prefix: str, set_name: str,
                               num_jobs: int = 1, work_dir=None) -> Counter:
    """Write the manifests of Common Voice `language`/`split` (train, dev, test, ...) as `set_name`.

    Returns the skipped-clip counts ("missing audio", "unreadable audio").  work_dir is
    not used (kept for the command line)."""
    cv_dir = require(cv_dir, "Common Voice release directory", LAYOUT)
    check_mp3_support()
    tsv = require(cv_dir / language / f"{split}.tsv", f"Common Voice {language} {split}.tsv", LAYOUT)
    clips_dir = require(cv_dir / language / "clips", f"Common Voice {language} clips directory", LAYOUT)
    rows = read_tsv(tsv, language)
    clip_ids = [Path(row["path"]).stem for _, row in rows]
    with ThreadPoolExecutor(max_workers=max(1, num_jobs)) as pool:
        results = list(pool.map(_recording, (clips_dir / row["path"] for _, row in rows), clip_ids))

    recordings, supervisions, skipped, seen = [], [], Counter(), {}
    for (number, row), clip_id, rec in zip(rows, clip_ids, results):
        if clip_id in seen:
            raise UdistilError(f"{tsv}:{number}: clip {row['path']} is listed again (line {seen[clip_id]})")
        seen[clip_id] = number
        if isinstance(rec, str):
            kind = "missing audio" if rec == "not found" else "unreadable audio"
            skipped[kind] += 1
            log.warning("skipping %s:%d: clip %s %s", tsv, number, clips_dir / row["path"], rec)
            continue
        recordings.append(rec)
        supervisions.append(SupervisionSegment(
            id=clip_id, recording_id=clip_id, start=0.0, duration=rec.duration, channel=0,
            text=row["sentence"], language=language, speaker=row.get("client_id") or None))
    if skipped:
        log.warning("%s: skipped %d clips not found and %d unreadable (one line each above) of %d listed",
                    tsv, skipped["missing audio"], skipped["unreadable audio"], len(rows))
    if not supervisions:
        raise UdistilError(f"{tsv}: no clip listed there was found in {clips_dir}")
    write_set(recordings, supervisions, out_dir, prefix, set_name, language,
              f"Common Voice {language} {split} ({cv_dir})")
    return skipped
