"""Stage 3: label a CutSet with the teacher, keeping per-token statistics (docs/design.md).

Adds to each supervision's `custom`: teacher_text, teacher_tokens, teacher_logprobs,
teacher_entropy (per token), plus teacher_language (forced or detected), teacher_stop
(eot | budget | loop: a loop means Whisper was hallucinating) and teacher_packed; a clip
decoded in Whisper's timestamp mode (DecodeOptions.timestamps) also gets
teacher_timestamped_tokens, its output with the timestamp tokens (the text and the
per-token fields never hold them).

Cuts are processed in chunks; each finished cut is appended to a partial file at once, so
a killed run re-run redoes at most the chunk in flight.  Cuts that cannot be labelled are
skipped, logged with the file name and reason, and counted:
  * unusable audio (missing, corrupt, empty, silent, over 30 s): see udistil.data.audio;
  * a language code the teacher has no token for.
They are absent from the output manifest; the log and the summary line say how many.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from udistil.data.audio import audio_source_path, load_cut_audio
from udistil.data.manifests import custom, iter_cuts, supervision, write_json_atomic
from udistil.errors import BadAudioError, UdistilError
from udistil.models.identity import model_identity
from udistil.parallel.fingerprint import fingerprint
from udistil.parallel.resumable import ResumableCutWriter
from udistil.teacher.kd_targets import TargetStore
from udistil.teacher.transcriber import Transcriber

logger = logging.getLogger(__name__)

# Cuts loaded and decoded together: large enough to fill packed windows and batches,
# small enough that a kill loses little.
CHUNK_CUTS = 64
# Cuts read ahead and sorted by duration; memory holds one window, whatever the corpus size.
WINDOW_CUTS = 1024


def cut_language(cut) -> str | None:
    lang = supervision(cut).language
    return lang or None


def iter_chunks(in_path, window: int | None = None):
    """Chunks of CHUNK_CUTS cuts, streamed: each window of `window` input cuts is sorted by
    duration (similar lengths batch well) and cut into chunks.

    A chunk depends only on the input, never on what an earlier run finished, so a resumed
    run decodes every unfinished chunk with the same neighbours (packing!) as an
    uninterrupted one and writes the same labels.
    """
    window = window or WINDOW_CUTS
    batch = []
    for cut in iter_cuts(in_path):
        batch.append(cut)
        if len(batch) == window:
            yield from _sorted_chunks(batch)
            batch = []
    yield from _sorted_chunks(batch)


def _sorted_chunks(cuts):
    cuts = sorted(cuts, key=lambda c: c.duration)
    for start in range(0, len(cuts), CHUNK_CUTS):
        yield cuts[start:start + CHUNK_CUTS]


def load_chunk(chunk, transcriber: Transcriber, writer: ResumableCutWriter):
    """(cuts, audio arrays, languages) of a chunk's usable cuts; unusable ones are skipped
    (recorded once: a cut already skipped by an earlier run is not recorded again)."""
    cuts, audios, langs = [], [], []
    for cut in chunk:
        lang = cut_language(cut)
        if not transcriber.supports(lang):
            reason = f"language {lang!r} is not supported by the teacher"
        else:
            try:
                audio = load_cut_audio(cut)
            except BadAudioError as e:
                reason = e.reason
            else:
                cuts.append(cut)
                audios.append(audio)
                langs.append(lang)
                continue
        if not writer.is_done(cut.id):
            logger.warning("skipping %s (cut %s): %s", audio_source_path(cut), cut.id, reason)
            writer.skip(cut.id, reason)
    return cuts, audios, langs


def store_transcript(cut, transcript, targets=None) -> None:
    fields = custom(cut)
    fields["teacher_text"] = transcript.text
    fields["teacher_tokens"] = transcript.tokens
    fields["teacher_logprobs"] = [round(x, 5) for x in transcript.logprobs]
    fields["teacher_entropy"] = [round(x, 5) for x in transcript.entropies]
    fields["teacher_language"] = transcript.language
    fields["teacher_stop"] = transcript.stop
    fields["teacher_packed"] = transcript.packed
    if transcript.timestamped_tokens:
        # Decoded in timestamp mode: the text above is without its timestamps; the whole
        # sequence is kept for students that learn to write them (docs/timestamps.md).
        fields["teacher_timestamped_tokens"] = transcript.timestamped_tokens
    if targets is not None:
        targets.attach(cut, transcript.targets, transcript.tokens)


def labelling_fingerprint(in_path, model, options, targets_dir=None, dtype=None) -> dict:
    """What makes stage-3 labels what they are: the input, the teacher, the decoding options
    (batch size, threads and device only change speed), the teacher's precision, and where
    their distillation targets live.

    The precision is recorded only when it is not float32 (the CPU default), so labels made
    before --dtype existed keep their fingerprint; float16 labels from a GPU do differ."""
    from dataclasses import asdict

    from udistil.models.device import dtype_name

    opts = {k: v for k, v in asdict(options).items() if k not in ("batch_size",)}
    if not opts.get("split_above"):
        # off: labels made before the option keep their fingerprint
        opts.pop("split_above", None)
        opts.pop("split_piece", None)
    elif opts["split_piece"] == opts["split_above"]:
        opts.pop("split_piece")  # the one-threshold rule labels made before split_piece followed
    if not opts.get("min_eot_prob"):
        opts.pop("min_eot_prob", None)  # off: labels and decodes made before the option keep theirs
    opts["targets_dir"] = str(targets_dir) if targets_dir is not None else None
    if dtype is not None and dtype_name(dtype) != "float32":
        opts["dtype"] = dtype_name(dtype)
    return fingerprint([in_path], model=model, options=opts)


def pseudo_label(in_path: str | Path, out_path: str | Path, transcriber: Transcriber,
                 overwrite: bool = False, targets_dir: str | Path | None = None,
                 redo_stale: bool = False, progress: str = "pseudo-label") -> dict:
    """Label every cut of `in_path` into `out_path`; returns counts for the log.

    With `targets_dir` (and `transcriber.options.targets` set), the teacher's distillation
    targets are stored there and attached to each labelled cut (kd_targets.py).
    Memory is bounded by a window of cuts (WINDOW_CUTS), not by the corpus.  A finished
    or partial output made with another input, teacher or options stops the run (or is
    redone with redo_stale); see udistil.parallel.fingerprint.  `progress` names the work
    on the progress bar (`udistil decode` says "decode").
    """
    out_path = Path(out_path)
    fp = labelling_fingerprint(in_path, transcriber.name, transcriber.options, targets_dir,
                               dtype=getattr(transcriber, "dtype", None))
    writer = ResumableCutWriter(out_path, fingerprint=fp, redo=redo_stale, overwrite=overwrite)
    if writer.finished:
        writer.close()
        logger.info("%s exists and matches its fingerprint; skipping (use --overwrite to redo)", out_path)
        return {"skipped_existing": True}
    store = None
    if targets_dir is not None:
        if transcriber.options.targets is None:
            writer.close()
            raise ValueError("targets_dir needs DecodeOptions.targets")
        # One storage file per shard, named after its output; a shard with no labelled cut
        # yet starts it afresh (whatever a killed or stale run left there, nothing refers to it).
        try:
            store = TargetStore(targets_dir, transcriber.options.targets,
                                model_identity(transcriber.model_dir), transcriber.name,
                                shard=shard_name(out_path), fresh=not writer.done)
        except BaseException:
            writer.close()
            raise
    audio_s, t0, total = 0.0, time.time(), 0
    try:
        with tqdm(initial=len(writer.done) + len(writer.skipped),
                  desc=f"{progress} {Path(in_path).name}", unit="cut", mininterval=5) as bar:
            for chunk in iter_chunks(in_path):
                total += len(chunk)
                if all(writer.is_done(c.id) for c in chunk):
                    continue
                cuts, audios, langs = load_chunk(chunk, transcriber, writer)
                if cuts:
                    for cut, transcript in zip(cuts, transcriber.transcribe(audios, langs)):
                        if not writer.is_done(cut.id):  # decoded again only as a neighbour
                            store_transcript(cut, transcript, store)
                            writer.add(cut)
                    audio_s += sum(c.duration for c in cuts)
                bar.n = len(writer.done) + len(writer.skipped)
                bar.refresh()
        if not writer.done:
            raise NothingLabelledError(in_path, total, writer.skipped)
        writer.finish(order=(c.id for c in iter_cuts(in_path)))
    finally:
        if store is not None:
            store.close()
        writer.close()
    wall = time.time() - t0
    stops = Counter(custom(c).get("teacher_stop") for c in iter_cuts(out_path))
    skips = Counter(_reason_kind(r) for r in writer.skipped.values())
    summary = {"cuts": total, "labelled": len(writer.done), "skipped": dict(skips),
               "skipped_ids": dict(writer.skipped),
               "stops": dict(stops), "audio_s": round(audio_s, 1), "wall_s": round(wall, 1),
               "rtf_inverse": round(audio_s / wall, 2) if wall > 0 else None,
               "decoder": transcriber.stats}
    # Beside the manifest, for the filter report (filter cost relative to labelling).
    write_json_atomic(summary, out_path.with_name(out_path.name + ".stats.json"))
    logger.info("%s: labelled %d of %d cuts (%s skipped: %s); stops %s; %.1f s audio in %.1f s",
                out_path, len(writer.done), total, sum(skips.values()), dict(skips),
                dict(stops), audio_s, wall)
    return summary


def shard_name(out_path: Path) -> str:
    """cuts.3.jsonl.gz -> cuts.3: the name of the shard's file in the targets store."""
    name = Path(out_path).name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(";")[0]


class NothingLabelledError(UdistilError):
    """Every cut of a set was skipped: one line with the count and the reasons, no manifest."""

    def __init__(self, in_path, total: int, skipped: dict[str, str]):
        self.skipped = dict(skipped)
        kinds = Counter(_reason_kind(r) for r in skipped.values())
        first = next(iter(skipped), None)
        super().__init__(
            f"{in_path}: no cut could be labelled: {len(skipped)} of {total} skipped "
            f"({', '.join(f'{k}: {n}' for k, n in kinds.most_common()) or 'empty input'})"
            + (f"; e.g. cut {first}: {skipped[first]}" if first else "")
            + "; relative audio paths are read relative to the manifest's directory")
