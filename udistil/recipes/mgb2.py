"""MGB-2 (Arabic broadcast news, Al Jazeera) as distributed by QCRI / arabicspeech.org.

Layout (the release, unpacked; README of egs/mgb2 says where to get it):

    <mgb2_dir>/train/wav/<recording>.wav
    <mgb2_dir>/train/xml/utf8/<recording>.xml      (lightly supervised alignment, with WMER)
    <mgb2_dir>/{dev,test}/wav/<recording>.wav
    <mgb2_dir>/{dev,test}/wav.scp                  ("<recording> wav/<recording>.wav")
    <mgb2_dir>/{dev,test}/segments.non_overlap_speech
    <mgb2_dir>/{dev,test}/text.non_overlap_speech  (Buckwalter transliteration)

Parsing is lhotse's MGB2 recipe (`lhotse.recipes.mgb2`): its XML reader with the WMER
threshold, its Buckwalter-to-Arabic map for dev/test and its text cleaning for train.  We do
not call `prepare_mgb2` itself because it asserts the full release's utterance counts
(375103 / 5002 / 5365), so it cannot prepare a subset, a later release or a test fixture;
the counts are logged here instead.  lhotse labels the language "Arabic"; we write "ar".
"""
from __future__ import annotations

import logging
from itertools import chain
from pathlib import Path

from lhotse import RecordingSet
from lhotse.recipes.mgb2 import cleaning, from_buck_walter, make_supervisions
from lhotse.utils import recursion_limit

from udistil.data.kaldi_dir import import_kaldi_dir
from udistil.data.source_manifests import read_recordings, read_supervisions
from udistil.errors import UdistilError
from udistil.recipes.common import check_utf8, require, write_set

log = logging.getLogger(__name__)

PARTS = ("train", "dev", "test")
# Utterances in the full release with lhotse's defaults (mer_thresh=80), for the log.
FULL_RELEASE_COUNTS = {"train": 375103, "dev": 5002, "test": 5365}
LAYOUT = ("<mgb2_dir>/train/{wav/*.wav, xml/utf8/*.xml} and <mgb2_dir>/{dev,test}/"
          "{wav/*.wav, wav.scp, segments.non_overlap_speech, text.non_overlap_speech}")


def train_supervisions(corpus_dir: Path, mer_thresh: float | None, text_cleaning: bool):
    xml_dir = require(corpus_dir / "train" / "xml" / "utf8", "MGB2 training transcripts (XML, UTF-8)", LAYOUT)
    xml_paths = sorted(xml_dir.glob("*.xml"))
    if not xml_paths:
        raise UdistilError(f"{xml_dir}: no *.xml files. Expected layout: {LAYOUT}")
    try:
        import bs4  # noqa: F401  lhotse's XML reader uses BeautifulSoup with the lxml parser
        import lxml  # noqa: F401
    except ImportError as e:
        raise UdistilError(f"reading MGB2 XML needs beautifulsoup4 and lxml ({e}); run tools/install.sh") from e
    sups = []
    with recursion_limit(5000):
        for xml_path in xml_paths:
            try:
                sups.append(make_supervisions(str(xml_path), mer_thresh))
            except (KeyError, AttributeError, ValueError) as e:
                raise UdistilError(f"{xml_path}: not an MGB2 transcript XML "
                                   f"(segment without id/starttime/endtime/WMER/who? {type(e).__name__}: {e})") from e
    sups = list(chain.from_iterable(sups))
    if text_cleaning:
        sups = [s.transform_text(cleaning) for s in sups]
    return sups


def prepare_mgb2_part(corpus_dir, part: str, out_dir, prefix: str, set_name: str, mer_thresh: float | None = 80,
                      text_cleaning: bool = True, work_dir="data/local/mgb2", skip_bad_audio: bool = False) -> None:
    """Write the manifests of MGB2 `part` (train, dev or test) as set `set_name`.

    skip_bad_audio: a dev/test recording whose wav is missing or unreadable is skipped (one
    log line each, counted) instead of stopping.  In train, a transcript XML without its wav
    is always left out with one log line (a partial copy of the release is common)."""
    corpus_dir = Path(corpus_dir)
    if part not in PARTS:
        raise UdistilError(f"MGB2 part must be one of {PARTS}, not {part!r}")
    require(corpus_dir, "MGB2 corpus directory", LAYOUT)
    if part == "train":
        wav_dir = require(corpus_dir / "train" / "wav", "MGB2 training audio", LAYOUT)
        recordings = RecordingSet.from_dir(wav_dir, pattern="*.wav")
        supervisions = train_supervisions(corpus_dir, mer_thresh, text_cleaning)
        no_wav = sorted({s.recording_id for s in supervisions} - set(recordings.ids))
        for rec_id in no_wav:
            log.warning("skipping %s: no %s.wav in %s; its segments are left out",
                        corpus_dir / "train" / "xml" / "utf8" / f"{rec_id}.xml", rec_id, wav_dir)
        if no_wav:
            log.warning("MGB2 train: %d transcripts without their wav left out", len(no_wav))
    else:
        part_dir = corpus_dir / part
        # The release's dev/test are Kaldi files with non-standard names and wav.scp paths
        # relative to the part directory; make a standard Kaldi dir of them and import it.
        kaldi_dir = Path(work_dir) / part
        kaldi_dir.mkdir(parents=True, exist_ok=True)
        for src, dst in (("text.non_overlap_speech", "text"), ("segments.non_overlap_speech", "segments")):
            require(part_dir / src, f"MGB2 {part} {dst}", LAYOUT)
            check_utf8(part_dir / src)  # errors name the release's file, not our copy
            (kaldi_dir / dst).write_text((part_dir / src).read_text(encoding="utf-8"), encoding="utf-8")
        check_utf8(require(part_dir / "wav.scp", f"MGB2 {part} wav.scp", LAYOUT))
        wav_scp = (part_dir / "wav.scp").read_text(encoding="utf-8")
        (kaldi_dir / "wav.scp").write_text(wav_scp.replace("wav/", f"{part_dir.resolve()}/wav/"), encoding="utf-8")
        imported = import_kaldi_dir(kaldi_dir, "ar", kaldi_dir, prefix="kaldi", split=part,
                                    skip_bad_audio=skip_bad_audio)
        recordings = read_recordings(imported.recordings)
        # References are Buckwalter; Whisper and the scorer want Arabic script.
        supervisions = [s.transform_text(from_buck_walter) for s in read_supervisions(imported.supervisions)]
    expected = FULL_RELEASE_COUNTS[part]
    log.info("MGB2 %s: %d utterances (the full release has %d with mer_thresh=80)",
             part, len(supervisions), expected)
    write_set(recordings, supervisions, out_dir, prefix, set_name, "ar", f"MGB2 {part} ({corpus_dir})")
