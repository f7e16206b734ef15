"""AMMI student speech corpora: read Arabic and Swahili, MIT licence, public on GitHub.

Three repositories recorded with LIG-Aikuma for the AMMI/AIMS speech recognition course:

    AhmedMnsour/Arabic-Speech-Recognition-Dataset     Arabic, one speaker
    AbubakrHassan/Arabic-Speech-Recognition-Dataset   Arabic, another speaker
    CateGitau/Swahili-Speech                          Swahili

Layout of each clone (only these files are read):

    <clone>/data/records/{train,val,test}/<ID>.wav     16 kHz mono PCM
    <clone>/data/raw_text_file.txt                     one "<ID>:<text>" line per clip

One language is prepared at a time; Arabic combines its clones (the clip ids differ
between them, and a repeated id stops preparation).  Recording and supervision ids are
the file stems, the speaker is the clone directory's name, the text is the raw
transcript with its spaces collapsed (scoring normalises it further).

Three decisions, each logged with counts:
  * A train clip whose transcript (normalised) is also read in that language's val or
    test split is left out of the train pool: the same speaker reading the same line
    would let a student memorise a test sentence.  The repositories repeat a few
    boilerplate lines ("Imetayarishwa na mwandishi wetu ...") and some Wikipedia lines.
  * Each set may be a fixed subset (SUBSET_SIZES) so that a run fits a CPU budget of two
    hours on two shared cores: a seeded sample of the sorted ids of the clips stage 2 keeps
    (at most MAX_DURATION seconds), written back in id order.  The same clones, size and
    seed give the same subset on any machine.  Train is subset after the clips reading a
    val/test line are left out, so the pool mixes both Arabic speakers in proportion.
  * A wav without a transcript line, or a line without a wav, is left out (counted).
"""
from __future__ import annotations

import logging
import random
import re
from pathlib import Path

from lhotse import Recording, SupervisionSegment

from udistil.data.prepare_cuts import MAX_DURATION
from udistil.errors import UdistilError
from udistil.evaluate.normalize import normalizer_for
from udistil.recipes.common import require, write_set

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
LANGUAGES = ("ar", "sw")
LAYOUT = "<clone>/data/records/{train,val,test}/<ID>.wav and <clone>/data/raw_text_file.txt (lines '<ID>:<text>')"
# Default subset size per split and language (0, or a size >= the split: the whole split).
# Teacher labelling (stage 3) and decoding cost about one 30 s encoder pass per clip, so the
# clip counts, not the hours, set the budget.
SUBSET_SIZES = {"train": {"ar": 300, "sw": 120}, "val": {"ar": 100, "sw": 0}, "test": {"ar": 300, "sw": 100}}
SUBSET_SEED = 20200623
_SPACES = re.compile(r"\s+")


def read_transcripts(clone: Path) -> dict[str, str]:
    """<clone>/data/raw_text_file.txt as {clip id: text}; a malformed or repeated line stops here."""
    path = require(clone / "data" / "raw_text_file.txt", "AMMI transcript file", LAYOUT)
    texts: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        clip_id, sep, text = line.partition(":")
        clip_id = clip_id.strip()
        if not sep or not clip_id:
            raise UdistilError(f"{path}:{number}: expected '<ID>:<text>', got {line[:60]!r}")
        if clip_id in texts:
            raise UdistilError(f"{path}:{number}: clip id {clip_id} is listed twice")
        texts[clip_id] = _SPACES.sub(" ", text).strip()
    return texts


def split_wavs(clone: Path, split: str) -> list[Path]:
    split_dir = require(clone / "data" / "records" / split, f"AMMI {split} directory", LAYOUT)
    return sorted(split_dir.glob("*.wav"))


def _clip_texts(clones: list[Path], split: str, language: str) -> set[str]:
    """Normalised transcripts of the clips of `split` (what counts as "the same line")."""
    normalize = normalizer_for(language)
    out = set()
    for clone in clones:
        texts = read_transcripts(clone)
        out |= {normalize(texts[w.stem]) for w in split_wavs(clone, split) if w.stem in texts}
    return out


def choose_subset(ids: list[str], size: int, seed: int = SUBSET_SEED) -> list[str]:
    """`size` ids drawn with `seed` from the sorted ids, returned sorted; all of them if size is 0 or too big."""
    ids = sorted(ids)
    if size <= 0 or size >= len(ids):
        return ids
    return sorted(random.Random(seed).sample(ids, size))


def prepare_ammi_split(clone_dirs, language: str, split: str, out_dir, prefix: str, set_name: str,
                       subset_size: int | None = None, seed: int = SUBSET_SEED) -> None:
    """Write the manifests of AMMI `split` (train, val, test) of `language` as `set_name`.

    subset_size: clips kept (None = SUBSET_SIZES[split][language], 0 = all of them).
    """
    if language not in LANGUAGES:
        raise UdistilError(f"AMMI language must be one of {LANGUAGES}, not {language!r}")
    if split not in SPLITS:
        raise UdistilError(f"AMMI split must be one of {SPLITS}, not {split!r}")
    clones = [require(Path(d), f"AMMI {language} clone", LAYOUT) for d in clone_dirs]
    if not clones:
        raise UdistilError(f"no AMMI {language} clone given")
    source = " + ".join(str(c) for c in clones)
    held_out = set()
    if split == "train":
        held_out = _clip_texts(clones, "val", language) | _clip_texts(clones, "test", language)
    normalize = normalizer_for(language)

    recordings: dict[str, Recording] = {}
    supervisions: list[SupervisionSegment] = []
    no_text = repeated_line = 0
    for clone in clones:
        texts = read_transcripts(clone)
        for wav in split_wavs(clone, split):
            clip_id = wav.stem
            if clip_id in recordings:
                raise UdistilError(f"{wav}: clip id {clip_id} also appears in another clone ({source})")
            text = texts.get(clip_id)
            if text is None:
                no_text += 1
                log.warning("%s: no line for clip %s in %s; clip left out", wav, clip_id, "data/raw_text_file.txt")
                continue
            if normalize(text) in held_out:
                repeated_line += 1
                log.info("%s: clip %s reads a line also read in val or test; left out of the train pool",
                         wav, clip_id)
                continue
            recordings[clip_id] = rec = Recording.from_file(wav, recording_id=clip_id)
            supervisions.append(SupervisionSegment(id=clip_id, recording_id=clip_id, start=0.0,
                                                   duration=rec.duration, channel=0, text=text,
                                                   language=language, speaker=clone.name))
    size = SUBSET_SIZES[split][language] if subset_size is None else subset_size
    usable = [s.id for s in supervisions if s.duration <= MAX_DURATION]
    if 0 < size < len(usable):
        chosen = set(choose_subset(usable, size, seed))
        log.info("%s %s: a subset of %d of %d clips (%d of them <= %.0f s; seed %d)", source, split,
                 len(chosen), len(supervisions), len(usable), MAX_DURATION, seed)
        supervisions = [s for s in supervisions if s.id in chosen]
        recordings = {k: r for k, r in recordings.items() if k in chosen}
    if no_text or repeated_line:
        log.warning("%s %s: %d clips without a transcript line, %d train clips reading a val/test line: left out",
                    source, split, no_text, repeated_line)
    write_set(recordings.values(), supervisions, out_dir, prefix, set_name, language,
              f"AMMI {language} {split} ({source})")
