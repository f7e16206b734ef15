"""`udistil transcribe`: audio files of any length in, text / JSON lines / SRT out.

Files are read a group at a time (up to `group_files` files, or as soon as the group holds
`group_segments` segments), so that the segments of many short files, or of one long file,
are decoded in full batches while the output still comes out file by file, in input order.
Per file: the audio is cut at its pauses (segments.py), the language is the forced one or
Whisper's guess on the file's first segment, and the segments are decoded together.

A file that cannot be read is reported on one line of stderr and skipped; the others go
on.  The caller learns how many failed.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udistil.errors import BadAudioError, UdistilError
from udistil.transcribe.audio_files import AUDIO_EXTENSIONS, find_audio_files, read_audio
from udistil.transcribe.output import EXTENSIONS, FileTranscript, Segment, render
from udistil.transcribe.segments import (SAMPLE_RATE, SegmentOptions, SpeechSegment, missed_segments,
                                         speech_seconds, split_at_pauses)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineDefaults:
    beam: int
    max_segment: float


# `udistil transcribe`'s beam and window length per engine, chosen with the second pass on a
# 308 s file of mini dev clips (benchmarks/export_transcribe.py --long-split dev, the CTranslate2
# int8 export; docs/timestamps.md).  With 30 s windows, beams 2, 3, 4 and 5 gave 37.6, 36.3,
# 36.2 and 36.5 WER (1.1, 1.0, 0.7 and 0.7 % of the words deleted, as the clips one by one):
# beam 4, the lowest, and a fifth less search than 5.  Greedy, the best window was 20 s: 36.9
# and 2.7 % (greedy 30 s: 40.0 and 1.7 %).  The torch engine stays greedy: its beam search is
# the pipeline's own, in Python, several times slower than CTranslate2's, and only greedy packs
# short segments into shared windows.
TRANSCRIBE_DEFAULTS = {"ctranslate2": EngineDefaults(beam=4, max_segment=30.0),
                       "torch": EngineDefaults(beam=1, max_segment=20.0)}


def engine_defaults(model: str, beam: int | None = None, max_segment: float | None = None) -> EngineDefaults:
    """The beam and --max-segment `udistil transcribe` uses for `model`: `beam` and
    `max_segment` where given, else its engine's (TRANSCRIBE_DEFAULTS)."""
    from udistil.models.export import is_ctranslate2_dir

    chosen = TRANSCRIBE_DEFAULTS["ctranslate2" if is_ctranslate2_dir(model) else "torch"]
    # `is None`, not `or`: a 0 given is the user's, and is refused downstream as out of range.
    return EngineDefaults(beam=chosen.beam if beam is None else beam,
                          max_segment=chosen.max_segment if max_segment is None else max_segment)


@dataclass
class RunSummary:
    files: int = 0
    failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0


@dataclass
class _Loaded:
    path: Path
    samples: np.ndarray
    segments: list[SpeechSegment]


class OutputSink:
    """stdout (text, jsonl, or SRT for a single file) or one file per input in a directory."""

    def __init__(self, fmt: str, output_dir=None, stream=None):
        self.fmt, self.stream = fmt, stream or sys.stdout
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.used: set[str] = set()
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)

    def write(self, transcript: FileTranscript) -> None:
        text = render(transcript, self.fmt)
        if self.output_dir is None:
            self.stream.write(text)
            self.stream.flush()
            return
        name = Path(transcript.path).stem
        stem, n = name, 1
        while stem in self.used:  # two inputs with one name (from different directories)
            n += 1
            stem = f"{name}-{n}"
        self.used.add(stem)
        out = self.output_dir / (stem + EXTENSIONS[self.fmt])
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)


def _report_bad(error: BadAudioError, bar) -> None:
    bar.write(f"udistil transcribe: SKIPPED {error}", file=sys.stderr)


def _groups(files: list[Path], options: SegmentOptions, group_files: int, group_segments: int, summary, bar):
    """Yield lists of readable files; bad ones are reported and counted on the way."""
    group: list[_Loaded] = []
    for path in files:
        try:
            samples = read_audio(path)
        except BadAudioError as e:
            _report_bad(e, bar)
            summary.failed += 1
            bar.update(1)
            continue
        group.append(_Loaded(path, samples, split_at_pauses(samples, options)))
        if len(group) >= group_files or sum(len(g.segments) for g in group) >= group_segments:
            yield group
            group = []
    if group:
        yield group


def transcribe_paths(paths, engine, language: str | None = None, fmt: str = "text", output_dir=None,
                     segment_options: SegmentOptions = SegmentOptions(), group_files: int = 16,
                     group_segments: int = 32, progress: bool = True, stream=None) -> RunSummary:
    from tqdm import tqdm

    if language is not None and not engine.supports(language):
        raise UdistilError(f"language {language!r} is not supported by this model")
    files = find_audio_files(paths)
    if not files:
        raise UdistilError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found in: {', '.join(map(str, paths))}")
    if fmt == "srt" and output_dir is None and len(files) > 1:
        raise UdistilError(f"SRT for {len(files)} files needs --output-dir (one .srt per file)")
    sink = OutputSink(fmt, output_dir, stream)
    summary = RunSummary(files=len(files))
    t0 = time.perf_counter()
    with tqdm(total=len(files), desc="transcribe", unit="file", disable=not progress, file=sys.stderr,
              mininterval=1) as bar:
        for group in _groups(files, segment_options, group_files, group_segments, summary, bar):
            for transcript in _transcribe_group(group, engine, language, segment_options):
                sink.write(transcript)
                summary.audio_s += transcript.duration
                bar.update(1)
            bar.set_postfix(audio_s=f"{summary.audio_s:.0f}")
    summary.wall_s = time.perf_counter() - t0
    log.info("%d files (%.1f s of audio) in %.1f s (%.2f audio-s/s); %d failed", summary.files - summary.failed,
             summary.audio_s, summary.wall_s, summary.audio_s / max(summary.wall_s, 1e-9), summary.failed)
    return summary


def file_time(segment: SpeechSegment, seconds: float) -> float:
    """The file time of `seconds` into the audio decoded for `segment` (its pieces joined
    end to end; a time in the join of two pieces belongs to the end of the first)."""
    at = int(round(seconds * SAMPLE_RATE))
    for start, end in segment.pieces:
        if at <= end - start:
            return (start + at) / SAMPLE_RATE
        at -= end - start
    return segment.end / SAMPLE_RATE


def file_segments(segment: SpeechSegment, timed) -> list[Segment]:
    """The output segments of one decoded speech segment: its sentences at the file times of
    the model's own timestamps when it was decoded with them (monotonic, inside the segment),
    else the segment's bounds and its whole text."""
    if not timed.sentences:
        return [Segment(segment.start / SAMPLE_RATE, segment.end / SAMPLE_RATE, timed.text)]
    out, floor = [], segment.start / SAMPLE_RATE
    for start, end, text in timed.sentences:
        start = max(file_time(segment, start), floor)
        end = max(file_time(segment, end), start)
        out.append(Segment(start, end, text))
        floor = end
    return out


def _in_order(segments: list[Segment]) -> list[Segment]:
    """Segments sorted by start, each starting no earlier than the one before ends."""
    out, floor = [], 0.0
    for segment in sorted(segments, key=lambda s: s.start):
        start = max(segment.start, floor)
        out.append(Segment(start, max(segment.end, start), segment.text))
        floor = out[-1].end
    return out


def _span(sentence: Segment) -> tuple[int, int]:
    """The file samples of `sentence`."""
    return int(sentence.start * SAMPLE_RATE), int(sentence.end * SAMPLE_RATE)


def _chars_per_second(segment: SpeechSegment, sentence: Segment) -> float | None:
    """Characters (spaces aside) per second of speech under `sentence`; None under 1 s."""
    seconds = speech_seconds(segment, *_span(sentence))
    return len(sentence.text.replace(" ", "")) / seconds if seconds >= 1.0 else None


def _second_pass_windows(timed_windows, options: SegmentOptions, by_file) -> list:
    """The stretches to decode again, as (file, segment); each window's trusted sentences go
    to `by_file`.

    whisper-base drops sentences of a long window in two ways: it skips them (their speech has
    no sentence), or it spreads a sentence or a hallucination over them (one sentence's
    timestamps span speech it did not transcribe: far fewer characters per second than the
    file's other sentences).  A sentence below `sparse_share` of the file's median rate (or,
    with fewer than three sentences to take a median of, below `sparse_floor`) covers nothing;
    where the stretches decoded again overlap it, their text replaces it, else it is kept."""
    window_rates = [[_chars_per_second(segment, x) for x in found] for _, segment, found in timed_windows]
    file_rates: dict[int, list[float]] = {}
    for (g, _, _), rates in zip(timed_windows, window_rates):
        file_rates.setdefault(id(g), []).extend(r for r in rates if r is not None)
    floors = {key: options.sparse_share * float(np.median(r)) if len(r) >= 3 else options.sparse_floor
              for key, r in file_rates.items()}
    missed = []
    for (g, segment, found), rates in zip(timed_windows, window_rates):
        is_sparse = [rate is not None and rate < floors[id(g)] for rate in rates]
        trusted = [_span(x) for x, low in zip(found, is_sparse) if not low]
        again = missed_segments(segment, trusted, options)
        # A sparse sentence gives way where the stretches decoded again overlap it.
        replaced = [low and any(speech_seconds(m, *_span(x)) for m in again) for x, low in zip(found, is_sparse)]
        by_file[id(g)] += [x for x, gone in zip(found, replaced) if not gone]
        missed += [(g, m) for m in again]
    return missed


def _transcribe_group(group: list[_Loaded], engine, language: str | None,
                      options: SegmentOptions = SegmentOptions()) -> list[FileTranscript]:
    with_speech = [g for g in group if g.segments]
    if language is not None:
        languages = [language] * len(with_speech)
    else:
        languages = engine.detect_languages([g.segments[0].audio(g.samples) for g in with_speech])
    file_language = {id(g): lang for g, lang in zip(with_speech, languages)}
    owners = [(g, segment) for g in with_speech for segment in g.segments]
    decoded = engine.transcribe_timed([segment.audio(g.samples) for g, segment in owners],
                                      [file_language[id(g)] for g, _ in owners]) if owners else []
    by_file: dict[int, list[Segment]] = {id(g): [] for g in group}
    timed_windows = []
    for (g, segment), timed in zip(owners, decoded):
        found = file_segments(segment, timed)
        if timed.timestamped:
            timed_windows.append((g, segment, found))
        else:
            by_file[id(g)] += found
    missed = _second_pass_windows(timed_windows, options, by_file)
    # Second pass: the speech a window's trusted sentences left out, decoded again in pieces.
    if missed:
        log.info("%d stretches of speech missed by their windows' sentences: decoded again", len(missed))
        again = engine.transcribe_timed([m.audio(g.samples) for g, m in missed],
                                        [file_language[id(g)] for g, _ in missed])
        for (g, m), timed in zip(missed, again):
            by_file[id(g)] += file_segments(m, timed)
    return [FileTranscript(os.fspath(g.path), len(g.samples) / SAMPLE_RATE, file_language.get(id(g), language or ""),
                           _in_order(by_file[id(g)])) for g in group]


def run_transcribe(paths, model: str, language=None, fmt="text", output_dir=None, device="auto",
                   compute_type="default", threads: int = 0, options=None, dtype: str = "auto",
                   segment_options: SegmentOptions | None = None, progress: bool = True) -> int:
    """Open the engine for `model`, transcribe `paths`; exit status 1 when any file failed.
    Without `options` or `segment_options`, the engine's defaults (TRANSCRIBE_DEFAULTS)."""
    from udistil.teacher.transcriber import DecodeOptions
    from udistil.transcribe.engines import open_engine

    defaults = engine_defaults(model)
    segment_options = segment_options or SegmentOptions(max_seconds=defaults.max_segment)
    if not 1.0 <= segment_options.max_seconds <= 30.0:
        raise UdistilError(f"--max-segment must be within 1..30 s (Whisper reads 30 s), "
                           f"got {segment_options.max_seconds}")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    engine = open_engine(model, options or DecodeOptions(beam=defaults.beam, pack=True, split_above=0.0), device=device,
                         compute_type=compute_type, threads=threads, dtype=dtype)
    summary = transcribe_paths(paths, engine, language=language, fmt=fmt, output_dir=output_dir,
                               segment_options=segment_options, progress=progress)
    if summary.failed:
        print(f"udistil transcribe: {summary.failed} of {summary.files} files failed (each named above)",
              file=sys.stderr)
        return 1
    return 0
