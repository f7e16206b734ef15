"""Import a Kaldi data directory into stage-1 lhotse manifests (RecordingSet + SupervisionSet).

Reads, as Kaldi's utils/validate_data_dir.sh defines them:
    wav.scp    <recording-id> <path>                    (a plain file)
               <recording-id> <command ...> |           (a pipe, e.g. "sox a.flac -t wav - |")
    text       <utterance-id> [<word> ...]              (optional; missing -> empty text)
    segments   <utterance-id> <recording-id> <start> <end>   (optional; end -1 = to the end)
    utt2spk    <utterance-id> <speaker-id>              (optional)
    reco2dur   <recording-id> <seconds>                 (optional; saves probing durations)

Why our own parser instead of lhotse.kaldi.load_kaldi_data_dir: a 500K-line corpus always has
a few bad lines, and the user needs "segments:1234: end 3.2 is before start 4.0", not a
ValueError from deep inside a thread pool.  Every structural problem stops with a
UdistilError naming the file and line.  An audio file that is missing or unreadable also
stops the import, naming its wav.scp line, unless skip_bad_audio is set, in which case the
recording and its utterances are skipped, one log line each, and counted ("missing audio",
"unreadable audio").  When a listed file is missing but a file of that name lies under the
data dir, wav.scp was written on another machine (ALFFA's is): the message says so and
points to `udistil prepare-alffa`, which maps such paths.

Piped recordings are run once to learn their sampling rate and length, unless reco2dur is
present and `sampling_rate` is given.
"""
from __future__ import annotations

import io
import logging
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from lhotse import Recording, SupervisionSegment
from lhotse.audio import AudioSource
from lhotse.audio.backend import info as audio_info

from udistil.data.languages import check_language
from udistil.data.source_manifests import manifest_path, write_manifest_deterministic
from udistil.errors import UdistilError

log = logging.getLogger(__name__)

# "file.ark:1234" in wav.scp points into a Kaldi archive; we do not read those.
ARK_OFFSET = re.compile(r"\.ark:\d+$")


class BadAudio(UdistilError):
    """A wav.scp entry whose audio is unreadable (skippable, unlike a malformed line)."""
    kind = "unreadable audio"


class MissingAudio(BadAudio):
    """A wav.scp entry naming a file that does not exist."""
    kind = "missing audio"


def placeholder_hint(data_dir: Path, missing: Path) -> str:
    """Why a listed file may be missing when the audio is here: wav.scp written on another machine."""
    if not any(p.name == missing.name and not p.name.startswith("._") for p in data_dir.rglob(missing.name)):
        return ""
    return (f"; a {missing.name} is under {data_dir}: its wav.scp holds paths from another machine (ALFFA's "
            "does: `udistil prepare-alffa --corpus-dir <ALFFA_PUBLIC/ASR/SWAHILI/data>` maps them onto its "
            "folders), so rewrite the paths rather than skipping")


@dataclass(frozen=True)
class Line:
    """One parsed line: where it came from, its key and the rest of the line."""
    path: Path
    number: int
    key: str
    rest: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"


def read_table(path: Path, require_value: bool = True) -> dict[str, Line]:
    """Kaldi 'key value...' lines as {key: Line}; empty lines, duplicates and bad bytes are errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UdistilError(f"{path}: not UTF-8 text ({e}); convert it with iconv") from e
    table: dict[str, Line] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.strip().split(maxsplit=1)
        if not fields:
            raise UdistilError(f"{path}:{number}: empty line")
        if require_value and len(fields) < 2:
            raise UdistilError(f"{path}:{number}: malformed line {raw.strip()!r}: expected '<id> <value>'")
        key = fields[0]
        if key in table:
            raise UdistilError(f"{path}:{number}: id {key} already appears on line {table[key].number}")
        table[key] = Line(path, number, key, fields[1].strip() if len(fields) > 1 else "")
    return table


def parse_float(line: Line, value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise UdistilError(f"{line.where}: {what} {value!r} is not a number") from None


@dataclass
class AudioFacts:
    sampling_rate: int
    num_samples: int
    channels: int


def probe_file(line: Line, path: Path) -> AudioFacts:
    if ARK_OFFSET.search(str(path)):
        raise UdistilError(f"{line.where}: {path} points into a Kaldi archive; extract it to wav "
                           "first (e.g. wav-copy) or use a 'command |' entry")
    if not path.exists():
        raise MissingAudio(f"{line.where}: audio file {path} not found (recording {line.key})")
    if path.stat().st_size == 0:
        raise BadAudio(f"{line.where}: audio file {path} is empty (recording {line.key})")
    try:
        info = audio_info(path)
    except Exception as e:  # soundfile/audioread raise many types for a bad header
        first = str(e).split("\n")[1] if "\n" in str(e) else str(e)
        raise BadAudio(f"{line.where}: cannot read audio file {path} (recording {line.key}): "
                           f"{first.strip()[:200]}") from e
    if info.frames == 0:
        raise BadAudio(f"{line.where}: audio file {path} has no samples (recording {line.key})")
    return AudioFacts(int(info.samplerate), int(info.frames), int(info.channels))


def probe_command(line: Line, command: str) -> AudioFacts:
    # Kaldi wav.scp commands are shell pipelines by definition.
    proc = subprocess.run(command, shell=True, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise BadAudio(f"{line.where}: command for recording {line.key} failed "
                           f"(exit {proc.returncode}): {err[-1] if err else 'no output'}")
    try:
        # Decode fully: a wav written to a pipe has no usable length in its header.
        samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    except Exception as e:
        raise BadAudio(f"{line.where}: output of the command for recording {line.key} is not "
                           f"audio soundfile can read: {e}") from e
    if samples.shape[0] == 0:
        raise BadAudio(f"{line.where}: command for recording {line.key} produced no samples")
    return AudioFacts(int(rate), int(samples.shape[0]), int(samples.shape[1]))


def make_recording(line: Line, durations: dict[str, Line], sampling_rate: int | None) -> Recording:
    """A Recording for one wav.scp line, probing the audio unless reco2dur and the rate suffice."""
    value = line.rest
    if value.endswith("|"):
        command = value[:-1].strip()
        if not command:
            raise UdistilError(f"{line.where}: empty command before '|'")
        source_type, source = "command", command
    else:
        if len(value.split()) != 1:
            raise UdistilError(f"{line.where}: malformed wav.scp entry {value!r}: expected a path, or a "
                               "command ending in '|'")
        # Relative paths are relative to where the recipe runs, as in Kaldi; store them
        # absolute so the manifest works from any directory.
        source_type, source = "file", str(Path(value).resolve())

    duration_line = durations.get(line.key)
    if source_type == "command" and duration_line is not None and sampling_rate:
        seconds = parse_float(duration_line, duration_line.rest, "duration")
        facts = AudioFacts(sampling_rate, round(seconds * sampling_rate), 1)
    else:
        facts = probe_command(line, source) if source_type == "command" else probe_file(line, Path(source))
        if sampling_rate and facts.sampling_rate != sampling_rate:
            raise UdistilError(f"{line.where}: recording {line.key} is {facts.sampling_rate} Hz, "
                               f"not the {sampling_rate} Hz given with --sampling-rate")
    channels = list(range(facts.channels))
    return Recording(id=line.key, sampling_rate=facts.sampling_rate, num_samples=facts.num_samples,
                     duration=facts.num_samples / facts.sampling_rate,
                     sources=[AudioSource(type=source_type, channels=channels, source=source)])


def segment_supervisions(segments: dict[str, Line], recordings: dict[str, Recording],
                         skipped_recordings: set[str]) -> list[SupervisionSegment]:
    sups = []
    for line in segments.values():
        fields = line.rest.split()
        if len(fields) != 3:
            raise UdistilError(f"{line.where}: malformed segments line: expected "
                               "'<utterance-id> <recording-id> <start> <end>'")
        reco_id, start_s, end_s = fields
        if reco_id in skipped_recordings:
            continue
        if reco_id not in recordings:
            raise UdistilError(f"{line.where}: recording {reco_id} of segment {line.key} is not in wav.scp")
        start = parse_float(line, start_s, "start")
        end = parse_float(line, end_s, "end")
        rec = recordings[reco_id]
        if end == -1:
            end = rec.duration
        if start < 0 or end <= start:
            raise UdistilError(f"{line.where}: segment {line.key} has start {start} and end {end}; "
                               "need 0 <= start < end")
        sups.append(SupervisionSegment(id=line.key, recording_id=reco_id, start=start,
                                       duration=round(end - start, 6), channel=_channel(rec)))
    return sups


def _channel(rec: Recording):
    return rec.channel_ids[0] if rec.num_channels == 1 else list(rec.channel_ids)


@dataclass
class KaldiImport:
    recordings: Path
    supervisions: Path
    num_recordings: int
    num_supervisions: int
    skipped: Counter


def import_kaldi_dir(data_dir, language: str, out_dir, prefix: str, split: str | None = None,
                     sampling_rate: int | None = None, skip_bad_audio: bool = False) -> KaldiImport:
    """Convert a Kaldi data dir into <out_dir>/<prefix>_{recordings,supervisions}[_<split>].jsonl.gz."""
    data_dir = Path(data_dir)
    language = check_language(language, f"--language for {data_dir}")
    wav_scp = data_dir / "wav.scp"
    if not wav_scp.exists():
        raise UdistilError(f"{wav_scp}: not found; a Kaldi data dir needs at least wav.scp")
    optional = {name: read_table(data_dir / name, require_value=name != "text")
                for name in ("text", "segments", "utt2spk", "reco2dur") if (data_dir / name).exists()}

    skipped = Counter()
    recordings: dict[str, Recording] = {}
    skipped_recordings: set[str] = set()
    hint = None  # checked once, at the first missing file
    for line in read_table(wav_scp).values():
        try:
            recordings[line.key] = make_recording(line, optional.get("reco2dur", {}), sampling_rate)
        except BadAudio as e:
            if isinstance(e, MissingAudio) and hint is None:
                hint = placeholder_hint(data_dir, Path(line.rest.strip()))
            if not skip_bad_audio:
                raise UdistilError(f"{e} (use --skip-bad-audio to skip such recordings){hint or ''}") from e
            log.warning("skipping %s", e)
            skipped[e.kind] += 1
            skipped_recordings.add(line.key)

    if "segments" in optional:
        sups = segment_supervisions(optional["segments"], recordings, skipped_recordings)
    else:
        sups = [SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration,
                                   channel=_channel(rec)) for rec in recordings.values()]
    sup_ids = {s.id for s in sups}
    # Utterances of skipped recordings may still appear in text/utt2spk; that is no error.
    if "segments" in optional:
        dropped = {k for k, ln in optional["segments"].items() if ln.rest.split()[0] in skipped_recordings}
    else:
        dropped = skipped_recordings
    for name in ("text", "utt2spk"):
        for line in optional.get(name, {}).values():
            if line.key not in sup_ids and line.key not in dropped:
                raise UdistilError(f"{line.where}: utterance {line.key} is in {name} but not in "
                                   f"{'segments' if 'segments' in optional else 'wav.scp'}")
    texts = optional.get("text", {})
    speakers = optional.get("utt2spk", {})
    for sup in sups:
        sup.language = language
        sup.text = texts[sup.id].rest if sup.id in texts else ""
        sup.speaker = speakers[sup.id].rest if sup.id in speakers else None
    without_text = sum(1 for s in sups if not s.text)
    if not sups:
        raise UdistilError(f"{data_dir}: no utterances left to import (skipped: {dict(skipped)}){hint or ''}")

    paths = (manifest_path(out_dir, prefix, "recordings", split),
             manifest_path(out_dir, prefix, "supervisions", split))
    write_manifest_deterministic(recordings.values(), paths[0])
    write_manifest_deterministic(sups, paths[1])
    log.info("%s: %d recordings, %d utterances (%d without text), language %s, skipped %s -> %s",
             data_dir, len(recordings), len(sups), without_text, language, dict(skipped) or "none",
             paths[0].parent)
    return KaldiImport(paths[0], paths[1], len(recordings), len(sups), skipped)
