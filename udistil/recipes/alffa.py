"""ALFFA Swahili (getalp/ALFFA_PUBLIC, ASR/SWAHILI/data; CC BY-NC-SA 3.0 as stated there).

Layout, as published (a clone of the repository, or its ASR/SWAHILI/data directory):

    <alffa_dir>/train/{wav.scp,text,utt2spk,spk2utt}   Kaldi data dir
    <alffa_dir>/train/wav/<speaker>/<utterance>.wav     the audio
    <alffa_dir>/test/{wav.scp,text,utt2spk,spk2utt}
    <alffa_dir>/test/wav5/<speaker>/<utterance>.wav

What the release does that a plain Kaldi import does not survive, and what is done here:
  * wav.scp holds the authors' paths ("/my_dir/wav/<speaker>/<utt>.wav" in test,
    "/home/.../data/train/wav/<speaker>/<utt>.wav " with a trailing space in train): a path
    that does not exist is replaced by the file of that speaker and name found under the
    split's directory (by name alone if the speaker folder differs).
  * macOS "._*" resource files lie beside every file (._text, ._<utt>.wav): never read.
  * `text` holds non-speech tags (<UNK>, <music>) and lines that are only a tag; they are
    kept as written, and scoring removes them (evaluate/normalize.py).
  * A wav found nowhere, or one that cannot be read, stops preparation naming it; with
    skip_bad_audio it is skipped with one log line and counted, and its lines in text and
    utt2spk go with it.  A text that is not UTF-8 is named as the user's file.

ALFFA has no dev set.  With `dev_set`, train's speakers are split deterministically: the
speakers sorted by the SHA-1 of their id, taken in that order until they hold at least
`dev_fraction` of the utterances (at least one speaker, never all), go to the dev set; the
others stay in train.  No speaker is in both, and the same release gives the same split on
any machine.  The fixed-up Kaldi dirs go to work_dir; the import is udistil's Kaldi importer
(language sw).
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path

from udistil.data.kaldi_dir import BadAudio, MissingAudio, import_kaldi_dir, probe_file, read_table
from udistil.data.source_manifests import read_recordings, read_supervisions
from udistil.errors import UdistilError
from udistil.recipes.common import check_utf8, require, write_set

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
LANGUAGE = "sw"
# Share of train's utterances (whole speakers) held out as the dev set when asked.
DEV_FRACTION = 0.05
LAYOUT = ("<alffa_dir>/{train,test}/{wav.scp,text,utt2spk} with the audio under "
          "<alffa_dir>/train/wav/<speaker>/ and <alffa_dir>/test/wav5/<speaker>/ (ALFFA_PUBLIC/ASR/SWAHILI/data)")


def audio_files(split_dir: Path) -> dict[tuple[str, str], Path]:
    """{(speaker folder, file name): path} of the .wav files under split_dir, "._*" left out."""
    found = {}
    for path in sorted(split_dir.rglob("*.wav")):
        if path.name.startswith("._") or not path.is_file():
            continue
        found.setdefault((path.parent.name, path.name), path)
    return found


def find_audio(listed: str, files: dict, by_name: dict) -> Path | None:
    """The local file for a wav.scp path: the path itself, else speaker/name, else name."""
    path = Path(listed)
    if path.is_file():
        return path
    return files.get((path.parent.name, path.name)) or by_name.get(path.name)


def localise_kaldi_dir(split_dir: Path, out_dir: Path, skip_bad_audio: bool = False) -> tuple[Path, Counter]:
    """Write a Kaldi dir at out_dir whose wav.scp paths exist here; returns it and what was skipped."""
    wav_scp = require(split_dir / "wav.scp", "ALFFA wav.scp", LAYOUT)
    for name in ("wav.scp", "text", "utt2spk", "segments"):
        if (split_dir / name).is_file():
            check_utf8(split_dir / name)
    # Parsed here so a malformed line is reported in the user's file, not in our copy.
    tables = {name: read_table(split_dir / name, require_value=name != "text")
              for name in ("text", "utt2spk", "segments") if (split_dir / name).is_file()}
    files = audio_files(split_dir)
    by_name = {}
    for (_, name), path in files.items():
        by_name.setdefault(name, path)

    skipped: Counter = Counter()
    dropped: set[str] = set()
    scp_lines = []
    for line in read_table(wav_scp).values():
        value = line.rest.strip()
        if value.endswith("|"):  # a command: left to the importer
            scp_lines.append(f"{line.key} {value}")
            continue
        found = find_audio(value, files, by_name)
        try:
            if found is None:
                raise MissingAudio(f"{line.where}: {value} does not exist and no {Path(value).name} was found "
                                   f"under {split_dir} (recording {line.key})")
            probe_file(line, found)  # here, so that an unreadable file is named with the user's wav.scp line
        except BadAudio as e:
            if not skip_bad_audio:
                raise UdistilError(f"{e}; use --skip-bad-audio to skip such recordings") from e
            log.warning("skipping %s", e)
            skipped[e.kind] += 1
            dropped.add(line.key)
            continue
        scp_lines.append(f"{line.key} {found.resolve()}")

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "wav.scp").write_text("".join(f"{x}\n" for x in scp_lines), encoding="utf-8")
    segments = tables.get("segments", {})
    dropped_utts = {k for k, ln in segments.items() if ln.rest.split()[0] in dropped} if segments else dropped
    for name, table in tables.items():
        if name == "segments":
            keep = [ln for ln in table.values() if ln.rest.split()[0] not in dropped]
        else:
            keep = [ln for ln in table.values() if ln.key not in dropped_utts]
        (out_dir / name).write_text("".join(f"{ln.key} {ln.rest}".rstrip() + "\n" for ln in keep), encoding="utf-8")
    return out_dir, skipped


def dev_speakers(speaker_counts: dict[str, int], fraction: float) -> set[str]:
    """The speakers held out as dev (module docstring): SHA-1 order, until `fraction` of utterances."""
    if len(speaker_counts) < 2:
        raise UdistilError(f"cannot split a dev set off train by speaker: train has {len(speaker_counts)} speaker(s)")
    if not 0 < fraction < 1:
        raise UdistilError(f"dev fraction must be between 0 and 1, not {fraction}")
    total = sum(speaker_counts.values())
    order = sorted(speaker_counts, key=lambda s: hashlib.sha1(s.encode("utf-8")).hexdigest())
    chosen, held = set(), 0
    for speaker in order[:-1]:  # never every speaker
        chosen.add(speaker)
        held += speaker_counts[speaker]
        if held >= fraction * total:
            break
    return chosen


def prepare_alffa_split(alffa_dir, split: str, out_dir, prefix: str, set_name: str,
                        work_dir="data/local/alffa", skip_bad_audio: bool = False,
                        dev_set: str | None = None, dev_fraction: float = DEV_FRACTION) -> Counter:
    """Write the manifests of ALFFA Swahili `split` (train or test) as set `set_name`, language sw.

    dev_set (train only): also write that set from a by-speaker split of train (module
    docstring); `set_name` then holds the other speakers.  Returns the skipped-file counts."""
    if split not in SPLITS:
        raise UdistilError(f"ALFFA split must be one of {SPLITS}, not {split!r}")
    if dev_set is not None and split != "train":
        raise UdistilError("a dev set is split off ALFFA train only (--split train)")
    alffa_dir = require(alffa_dir, "ALFFA Swahili data directory", LAYOUT)
    split_dir = require(alffa_dir / split, f"ALFFA {split} directory", LAYOUT)
    work = Path(work_dir) / split
    kaldi_dir, skipped = localise_kaldi_dir(split_dir, work / "kaldi", skip_bad_audio)
    imported = import_kaldi_dir(kaldi_dir, LANGUAGE, work, "alffa", split=split, skip_bad_audio=skip_bad_audio)
    skipped.update(imported.skipped)  # audio that became unreadable since (normally none)
    recordings = read_recordings(imported.recordings)
    supervisions = list(read_supervisions(imported.supervisions))
    source = f"ALFFA {split} ({split_dir})"
    if sum(skipped.values()):
        log.warning("%s: skipped %d recordings with missing audio and %d with unreadable audio (one line each above)",
                    source, skipped["missing audio"], skipped["unreadable audio"])
    if dev_set is None:
        write_set(recordings, supervisions, out_dir, prefix, set_name, LANGUAGE, source)
        return skipped
    counts = Counter(s.speaker or s.recording_id for s in supervisions)
    held_out = dev_speakers(counts, dev_fraction)
    dev = [s for s in supervisions if (s.speaker or s.recording_id) in held_out]
    rest = [s for s in supervisions if (s.speaker or s.recording_id) not in held_out]
    log.info("%s: dev set %s = %d utterances of %d speakers (%s), split off by speaker; %d utterances of %d "
             "speakers stay in %s", source, dev_set, len(dev), len(held_out), " ".join(sorted(held_out)),
             len(rest), len(counts) - len(held_out), set_name)

    def recordings_of(sups):
        ids = {s.recording_id for s in sups}
        return [r for r in recordings if r.id in ids]

    write_set(recordings_of(rest), rest, out_dir, prefix, set_name, LANGUAGE, f"{source}, speakers not in {dev_set}")
    write_set(recordings_of(dev), dev, out_dir, prefix, dev_set, LANGUAGE, f"{source}, dev speakers")
    return skipped
