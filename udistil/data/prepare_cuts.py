"""Stage 2: recordings + supervisions -> a validated CutSet of <= 30 s, 16 kHz mono cuts.

One cut per supervision (`trim_to_supervisions`), cut id = supervision id.  Recordings
that are not 16 kHz get a lazy lhotse Resample transform; multi-channel recordings are
down-mixed once to a 16 kHz mono wav under `mono_dir` (lhotse has no lazy down-mix, and
Whisper is mono), so every output cut is a MonoCut.

What happens to bad input (decided per case; every skip is logged with the file and the
recording or supervision id, and counted in the closing summary):

| problem                                               | action                      |
|-------------------------------------------------------|-----------------------------|
| manifest missing, empty, truncated, not lhotse        | stop (ManifestError)        |
| supervision language not a Whisper code               | stop (UdistilError): a      |
|                                                       | config mistake, never a     |
|                                                       | property of one file        |
| audio file missing                                    | skip the recording          |
| audio file empty (0 bytes or 0 samples)               | skip the recording          |
| audio file corrupt (header unreadable)                | skip the recording          |
| file's sampling rate/length disagrees with manifest   | skip the recording          |
| supervision of an unknown recording                   | skip the supervision        |
| supervision of a skipped recording                    | skip (counted, not logged)  |
| supervision outside its recording                     | skip the supervision        |
| supervision longer than max_duration, with text       | drop it (text cannot be     |
|                                                       | divided without alignment)  |
| supervision longer than max_duration, no text         | split into equal <= max     |
|                                                       | pieces with split_long,     |
|                                                       | else drop                   |
| audio that decodes to silence / too short / NaN       | skip the cut (check_audio   |
|  (only with check_audio="decode", the default)        | = "header" does not decode) |
| every cut skipped                                     | stop (UdistilError)         |
| lhotse validation fails after all of the above        | stop (ManifestError)        |

Sources that are commands (Kaldi `sox ... |`) or URLs are not probed at header level;
with check_audio="decode" they are still decoded once, which catches a broken pipe.

Sharded (stage 2 in run.sh: one job per shard, `shard=(j, n)`): shard j takes the j-th of n
contiguous blocks of the recordings sorted by id, and their supervisions (a supervision of a
recording the manifest lacks is reported by shard 1); a shard may come out empty.  The
manifests are streamed: a shard keeps the sorted recording ids and its own block's manifest
lines, and makes lhotse objects SUB_BLOCK recordings at a time, so its memory follows its
block, not the corpus (reading both manifests whole cost every shard several KB per
recording of the corpus: 369 MB at 100K cuts against 249 MB at 10K).  Each shard
records what it was made from (`<out>.fingerprint.json`): a finished shard of the same
manifests and options is kept, so a killed stage 2 redoes only the shards it had not
finished.  `merge_prepared_shards` concatenates them in order (the same cuts, in the same
order, as one unsharded run) and stops when no cut is left.
"""
from __future__ import annotations

import bisect
import logging
import math
from dataclasses import replace
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.audio import AudioSource
from lhotse.audio.backend import info as audio_info
from lhotse.qa import validate

from udistil.data.audio import SAMPLE_RATE, load_cut_audio
from udistil.data.languages import check_language
from udistil.data.manifests import write_cuts
from udistil.data.manifests import resolve_recording_paths
from udistil.data.source_manifests import iter_manifest_items
from udistil.errors import BadAudioError, ManifestError, UdistilError
from udistil.tts.espeak import resample

log = logging.getLogger(__name__)

MAX_DURATION = 30.0
# Supervisions may overhang their recording by rounding error; beyond this they are wrong.
BOUNDS_TOLERANCE = 0.02
CHECK_AUDIO_MODES = ("decode", "header")
# Recordings turned into lhotse objects at a time: a shard's memory is bounded by this and by
# its block's manifest lines, not by the corpus.
SUB_BLOCK = 2000


@dataclass
class PrepareCutsReport:
    """What stage 2 did, for the log and for tests."""
    num_cuts: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    resampled: int = 0
    downmixed: int = 0
    split_long: int = 0  # supervisions split into pieces
    dropped_long: int = 0

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        log.warning("skipping %s", message)

    def summary(self) -> str:
        parts = [f"{self.num_cuts} cuts written", f"{self.resampled} recordings resampled to 16 kHz",
                 f"{self.downmixed} down-mixed to mono", f"{self.split_long} long unlabelled supervisions split",
                 f"{self.dropped_long} longer than the limit dropped"]
        parts += [f"skipped {n} ({reason})" for reason, n in sorted(self.skipped.items())]
        return "; ".join(parts)


def _short_error(e: Exception) -> str:
    """lhotse's AudioLoadingError lists every backend; the first line is the useful one."""
    text = str(e)
    marker = "Exception #0"
    if marker in text:
        text = text.split(marker, 1)[1].split("\n", 1)[0].split(">: ", 2)[-1]
    return text.strip()[:200]


def check_recording_file(rec: Recording) -> tuple[str, str] | None:
    """(reason, message) when a recording's file cannot be used, else None.  Only local files are probed."""
    for source in rec.sources:
        if source.type != "file":
            continue
        path = Path(source.source)
        if not path.exists():
            return "missing", f"audio file {path} not found"
        if path.stat().st_size == 0:
            return "empty", f"audio file {path} is 0 bytes"
        try:
            info = audio_info(path)
        except Exception as e:  # soundfile/audioread raise many types for a bad header
            return "corrupt", f"cannot read audio file {path}: {_short_error(e)}"
        if info.frames == 0:
            return "empty", f"audio file {path} has no samples"
        if info.samplerate != rec.sampling_rate:
            return ("mismatch", f"audio file {path} is {info.samplerate} Hz but the manifest says "
                    f"{rec.sampling_rate} Hz; regenerate the stage-1 manifest")
        if abs(info.frames / info.samplerate - rec.duration) > 0.1:
            return ("mismatch", f"audio file {path} lasts {info.frames / info.samplerate:.2f} s but the "
                    f"manifest says {rec.duration:.2f} s; was it overwritten?")
    return None


def split_supervision(sup: SupervisionSegment, max_duration: float) -> list[SupervisionSegment]:
    """Equal pieces no longer than max_duration (only for supervisions without text)."""
    pieces = math.ceil(sup.duration / max_duration - 1e-9)
    length = sup.duration / pieces
    return [SupervisionSegment(
        id=f"{sup.id}-part{i:03d}", recording_id=sup.recording_id, start=sup.start + i * length,
        duration=length, channel=sup.channel, text=sup.text, language=sup.language,
        speaker=sup.speaker, gender=sup.gender, custom=sup.custom) for i in range(pieces)]


def downmix_to_file(rec: Recording, mono_dir: Path) -> Recording:
    """Average all channels, resample to 16 kHz, write a wav; return the new Recording."""
    samples = rec.load_audio()  # (channels, samples)
    mono = resample(np.asarray(samples, dtype=np.float32).mean(axis=0), rec.sampling_rate, SAMPLE_RATE)
    mono_dir.mkdir(parents=True, exist_ok=True)
    path = (mono_dir / f"{rec.id}.wav").resolve()
    tmp = path.with_name(f".{path.name}.tmp.wav")
    sf.write(str(tmp), mono, SAMPLE_RATE, subtype="FLOAT")  # float: no second quantisation
    tmp.replace(path)
    return Recording(id=rec.id, sampling_rate=SAMPLE_RATE, num_samples=len(mono),
                     duration=len(mono) / SAMPLE_RATE,
                     sources=[AudioSource(type="file", channels=[0], source=str(path))])


def shard_block(sorted_ids: list[str], shard: int, num_shards: int) -> list[str]:
    """The recording ids of shard `shard` (1-based) of `num_shards`: a contiguous block of the sorted ids."""
    if not 1 <= shard <= num_shards:
        raise UdistilError(f"--shard {shard} is not between 1 and --num-shards {num_shards}")
    lo, hi = (len(sorted_ids) * (shard - 1)) // num_shards, (len(sorted_ids) * shard) // num_shards
    return sorted_ids[lo:hi]


def _contains(sorted_ids: list[str], rec_id: str) -> bool:
    i = bisect.bisect_left(sorted_ids, rec_id)
    return i < len(sorted_ids) and sorted_ids[i] == rec_id


def _shard_fingerprint(recordings_path, supervisions_path, max_duration, split_long, check_audio, shard):
    from udistil.parallel.fingerprint import fingerprint

    return fingerprint([recordings_path, supervisions_path],
                       options={"max_duration": max_duration, "split_long": split_long,
                                "check_audio": check_audio, "shard": list(shard)})


def prepare_cuts(recordings_path, supervisions_path, out_path, max_duration: float = MAX_DURATION,
                 split_long: bool = False, check_audio: str = "decode", mono_dir=None,
                 shard: tuple[int, int] | None = None) -> PrepareCutsReport:
    """Build, check and write the stage-2 CutSet (or one shard of it, see the module docstring)."""
    if check_audio not in CHECK_AUDIO_MODES:
        raise UdistilError(f"--check-audio must be one of {CHECK_AUDIO_MODES}, not {check_audio!r}")
    out_path = Path(out_path)
    mono_dir = Path(mono_dir) if mono_dir else out_path.parent / "wav_mono16k"
    report = PrepareCutsReport()
    fp = None
    if shard is not None:
        from udistil.parallel.fingerprint import differences, fingerprint_path, read_fingerprint

        fp = _shard_fingerprint(recordings_path, supervisions_path, max_duration, split_long, check_audio, shard)
        old = read_fingerprint(out_path)
        if out_path.exists() and old is not None:
            if not differences(old, fp):
                log.info("%s: shard %d/%d already made from these manifests; kept", out_path, *shard)
                return report
            log.warning("%s: made from other manifests or options (%s); redoing it", out_path,
                        "; ".join(differences(old, fp)))
        fingerprint_path(out_path).unlink(missing_ok=True)
    # Streamed, so that a shard's memory follows its block, not the corpus: one pass over the
    # recordings for their sorted ids (the shard blocks), one over the supervisions (every
    # language checked); this shard's items are kept as JSON lines and turned into lhotse
    # objects SUB_BLOCK recordings at a time.
    ids = sorted(data["id"] for _, _, data in iter_manifest_items(recordings_path, "recording"))
    for a, b in zip(ids, ids[1:]):
        if a == b:
            raise ManifestError(f"{recordings_path}: recording id {a} appears twice")
    block = ids if shard is None else shard_block(ids, *shard)
    first, last = (block[0], block[-1]) if block else (None, None)
    reports_unknown = shard is None or shard[0] == 1

    def mine(rec_id: str) -> bool:
        return first is not None and first <= rec_id <= last

    rec_lines: dict[str, str] = {}
    for _, line, data in iter_manifest_items(recordings_path, "recording"):
        if mine(data["id"]):
            rec_lines[data["id"]] = line
    sup_lines: dict[str, list[str]] = {}
    for _, line, data in iter_manifest_items(supervisions_path, "supervision"):
        check_language(data.get("language"), f"{supervisions_path} (supervision {data['id']})")
        rec_id = data.get("recording_id")
        known = isinstance(rec_id, str) and _contains(ids, rec_id)
        if known and mine(rec_id):
            sup_lines.setdefault(rec_id, []).append(line)
        elif not known and reports_unknown:
            report.skip("unknown recording", f"supervision {data['id']} in {supervisions_path}: "
                        f"recording {rec_id} is not in {recordings_path}")
    del ids

    def good_cuts():
        for lo in range(0, len(block), SUB_BLOCK):
            recordings = [_item(Recording, rec_lines.pop(i), recordings_path) for i in block[lo:lo + SUB_BLOCK]]
            supervisions = [_item(SupervisionSegment, line, supervisions_path)
                            for rec in recordings for line in sup_lines.pop(rec.id, ())]
            for rec in recordings:
                resolve_recording_paths(rec, Path(recordings_path).parent)
            yield from _prepare_block(recordings, supervisions, recordings_path, supervisions_path,
                                      max_duration, split_long, check_audio, mono_dir, report)

    def counted(cuts):
        for cut in cuts:
            report.num_cuts += 1
            yield cut

    write_cuts(counted(good_cuts()), out_path)
    if report.num_cuts == 0:
        if fp is None:  # an unsharded run with no cut stops; a shard may be empty (the merge checks the set)
            out_path.unlink(missing_ok=True)
            raise UdistilError(f"{recordings_path}: no usable cuts left ({report.summary()})")
    if fp is not None:
        _record_shard(out_path, fp)
    log.info("%s: %s", out_path, report.summary())
    return report


def _item(cls, line: str, path):
    """A lhotse Recording / SupervisionSegment from its manifest line; a bad one names the file."""
    import json

    data = json.loads(line)
    try:
        return cls.from_dict(data)
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise ManifestError(f"{path}: item {data.get('id')} is not a valid lhotse "
                            f"{cls.__name__} ({type(e).__name__}: {e})") from e


def _prepare_block(recordings, supervisions, recordings_path, supervisions_path, max_duration, split_long,
                   check_audio, mono_dir, report: PrepareCutsReport):
    """The checked cuts of some recordings (sorted by id) and their supervisions, in order."""
    usable: dict[str, Recording] = {}
    for rec in recordings:
        problem = check_recording_file(rec)
        if problem:
            reason, message = problem
            report.skip(reason, f"recording {rec.id} of {recordings_path}: {message}")
        else:
            usable[rec.id] = rec

    kept_sups = []
    for sup in supervisions:
        rec = usable.get(sup.recording_id)
        if rec is None:  # its recording was skipped, and reported with its file
            report.skipped["supervision of a skipped recording"] += 1
            continue
        if sup.start < -BOUNDS_TOLERANCE or sup.end > rec.duration + BOUNDS_TOLERANCE:
            report.skip("out of bounds", f"supervision {sup.id} in {supervisions_path}: "
                        f"{sup.start:.2f}-{sup.end:.2f} s lies outside recording {rec.id} "
                        f"({rec.duration:.2f} s, {rec.sources[0].source})")
            continue
        sup = sup.trim(rec.duration) if sup.end > rec.duration or sup.start < 0 else sup
        if sup.duration > max_duration:
            if split_long and not (sup.text or "").strip():
                kept_sups.extend(split_supervision(sup, max_duration))
                report.split_long += 1
                continue
            report.dropped_long += 1
            why = "it has text that cannot be divided without an alignment" if sup.text else "--split-long is off"
            log.warning("dropping supervision %s (%s): %.1f s is over %.0f s and %s",
                        sup.id, rec.sources[0].source, sup.duration, max_duration, why)
            continue
        kept_sups.append(sup)

    # Down-mix only the multi-channel recordings somebody still needs.
    needed = {sup.recording_id for sup in kept_sups}
    final_recs = {}
    for rec_id in sorted(needed):
        rec = usable[rec_id]
        if rec.num_channels > 1:
            try:
                rec = downmix_to_file(rec, mono_dir)
            except Exception as e:
                report.skip("corrupt", f"recording {rec_id} ({rec.sources[0].source}): cannot decode "
                            f"for down-mixing: {_short_error(e)}")
                continue
            report.downmixed += 1
        elif rec.sampling_rate != SAMPLE_RATE:
            rec = rec.resample(SAMPLE_RATE)
            report.resampled += 1
        final_recs[rec_id] = rec
    kept_sups = [replace(s, channel=0) for s in kept_sups if s.recording_id in final_recs]
    if not kept_sups:
        return

    cuts = CutSet.from_manifests(
        recordings=RecordingSet.from_recordings(final_recs[k] for k in sorted(final_recs)),
        supervisions=SupervisionSet.from_segments(kept_sups),
    ).trim_to_supervisions(keep_overlapping=False)

    for cut in cuts:
        if check_audio == "decode":
            try:
                load_cut_audio(cut, max_duration=max_duration)
            except BadAudioError as e:
                report.skip("bad audio", str(e))
                continue
        try:
            validate(cut)
        except (AssertionError, ValueError) as e:
            raise ManifestError(f"{recordings_path} (cut {cut.id}): lhotse validation failed: {e}") from e
        yield cut


def _record_shard(out_path: Path, fp: dict) -> None:
    from udistil.data.manifests import write_json_atomic
    from udistil.parallel.fingerprint import fingerprint_path

    write_json_atomic(fp, fingerprint_path(out_path))


def merge_prepared_shards(shard_paths, out_path, recordings_path=None) -> int:
    """Concatenate stage-2 shards (in order) into `out_path`; stop when no cut is left."""
    from udistil.parallel.fingerprint import read_fingerprint
    from udistil.parallel.shards import merge_cuts
    from udistil.data.manifests import count_cuts

    missing = [str(p) for p in shard_paths if read_fingerprint(p) is None or not Path(p).exists()]
    if missing:
        raise UdistilError(f"stage-2 shards not finished: {', '.join(missing)}; rerun stage 2")
    total = sum(count_cuts(p) for p in shard_paths)
    if total == 0:
        raise UdistilError(f"{recordings_path or shard_paths[0]}: no usable cuts left in any shard "
                           "(each shard's log says what was skipped and why)")
    merge_cuts(list(shard_paths), out_path)
    return total

