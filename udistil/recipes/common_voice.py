"""Mozilla Common Voice, any release, any language (the recipes use ar and sw).

Layout (one language of a release, unpacked as downloaded from commonvoice.mozilla.org):

    <cv_dir>/<lang>/clips/*.mp3
    <cv_dir>/<lang>/{train,dev,test}.tsv      (also validated/other/invalidated.tsv)

Parsing is lhotse's `prepare_commonvoice`, with the language passed explicitly: its "auto"
list (COMMONVOICE_LANGS) has neither ar nor sw.  lhotse reads these columns of each tsv:
path, sentence, client_id, gender, age, accents, variant; releases older than the
`variant`/`accents` columns (before CV 13) get them added, empty, in a copy of the tsv
under work_dir (the clips are linked, not copied).  The mp3s are decoded by libsndfile
(soundfile >= 0.12 with libsndfile >= 1.1 reads MP3); `check_mp3_support` says so clearly
when it cannot.
"""
from __future__ import annotations

import csv
import logging
import os
import shutil
from pathlib import Path

from udistil.errors import UdistilError
from udistil.recipes.common import require, write_set

log = logging.getLogger(__name__)

LAYOUT = "<cv_dir>/<lang>/clips/*.mp3 and <cv_dir>/<lang>/{train,dev,test}.tsv"
# Columns lhotse's Common Voice reader indexes; all but path and sentence may be empty.
LHOTSE_COLUMNS = ("client_id", "path", "sentence", "age", "gender", "accents", "variant")


def check_mp3_support() -> None:
    import soundfile as sf

    if "MP3" not in sf.available_formats():
        raise UdistilError(
            f"this soundfile/libsndfile cannot read MP3 (soundfile {sf.__version__}, libsndfile "
            f"{sf.__libsndfile_version__}); Common Voice clips are mp3: install soundfile>=0.12 "
            "(its wheel bundles libsndfile>=1.1 with MP3) via tools/install.sh")


def lhotse_ready_dir(cv_dir: Path, language: str, split: str, work_dir: Path) -> Path:
    """The directory to give lhotse: the release itself, or a copy of the tsv with missing columns."""
    tsv = require(cv_dir / language / f"{split}.tsv", f"Common Voice {language} {split}.tsv", LAYOUT)
    require(cv_dir / language / "clips", f"Common Voice {language} clips directory", LAYOUT)
    with open(tsv, encoding="utf-8", newline="") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    missing_required = [c for c in ("path", "sentence") if c not in header]
    if missing_required:
        raise UdistilError(f"{tsv}: no column {', '.join(missing_required)} in the header {header}; "
                           "is this a Common Voice tsv?")
    missing = [c for c in LHOTSE_COLUMNS if c not in header]
    if not missing:
        return cv_dir
    log.info("%s: older release without columns %s; adding them (empty) in %s", tsv, missing, work_dir)
    lang_dir = work_dir / language
    lang_dir.mkdir(parents=True, exist_ok=True)
    clips_link = lang_dir / "clips"
    if not clips_link.exists():
        os.symlink((cv_dir / language / "clips").resolve(), clips_link)
    with open(tsv, encoding="utf-8", newline="") as src, \
            open(lang_dir / f"{split}.tsv", "w", encoding="utf-8", newline="") as dst:
        reader = csv.DictReader(src, delimiter="\t", quoting=csv.QUOTE_NONE)
        writer = csv.DictWriter(dst, fieldnames=header + missing, delimiter="\t",
                                quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writeheader()
        for row in reader:
            writer.writerow({**row, **{c: "" for c in missing}})
    return work_dir


def prepare_common_voice_split(cv_dir, language: str, split: str, out_dir, prefix: str, set_name: str,
                               num_jobs: int = 1, work_dir="data/local/common_voice") -> None:
    """Write the manifests of Common Voice `language`/`split` (train, dev, test, ...) as `set_name`."""
    from lhotse.recipes.commonvoice import prepare_commonvoice

    cv_dir = require(cv_dir, "Common Voice release directory", LAYOUT)
    check_mp3_support()
    work_dir = Path(work_dir)
    corpus_dir = lhotse_ready_dir(cv_dir, language, split, work_dir)
    lhotse_out = work_dir / "lhotse"
    if lhotse_out.exists():
        # lhotse writes cv-<lang>_*_<split>.jsonl.gz but looks for cached ones under another
        # name, so it never reuses them; clear stale ones so nothing old can be picked up.
        shutil.rmtree(lhotse_out)
    manifests = prepare_commonvoice(corpus_dir, lhotse_out, languages=[language], splits=[split],
                                    num_jobs=num_jobs)
    part = manifests[language][split]
    if len(part["supervisions"]) == 0:
        raise UdistilError(f"{cv_dir / language / (split + '.tsv')}: no clip listed there was found "
                           f"in {cv_dir / language / 'clips'}")
    write_set(part["recordings"], part["supervisions"], out_dir, prefix, set_name, language,
              f"Common Voice {language} {split} ({cv_dir})")
