"""Stage 3: label a CutSet with the teacher, keeping per-token statistics (DESIGN.md).

Adds to each supervision's `custom`: teacher_text, teacher_tokens, teacher_logprobs,
teacher_entropy (per token), plus teacher_language (forced or detected), teacher_stop
(eot | budget | loop: a loop means Whisper was hallucinating) and teacher_packed.

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
from udistil.data.manifests import custom, read_cuts, supervision, write_json_atomic
from udistil.errors import BadAudioError
from udistil.models.identity import model_identity
from udistil.parallel.resumable import ResumableCutWriter
from udistil.teacher.kd_targets import TargetStore
from udistil.teacher.transcriber import Transcriber

logger = logging.getLogger(__name__)

# Cuts loaded and decoded together: large enough to fill packed windows and batches,
# small enough that a kill loses little.
CHUNK_CUTS = 64


def cut_language(cut) -> str | None:
    lang = supervision(cut).language
    return lang or None


def iter_loaded_chunks(cuts, transcriber: Transcriber, writer: ResumableCutWriter, skips: Counter):
    """Yield (cuts, audio arrays, languages) chunks in duration order, skipping bad cuts."""
    todo = sorted((c for c in cuts if not writer.is_done(c.id)), key=lambda c: c.duration)
    for start in range(0, len(todo), CHUNK_CUTS):
        chunk, audios, langs = [], [], []
        for cut in todo[start:start + CHUNK_CUTS]:
            lang = cut_language(cut)
            if not transcriber.supports(lang):
                reason = f"language {lang!r} is not supported by the teacher"
                logger.warning("skipping %s (cut %s): %s", audio_source_path(cut), cut.id, reason)
                writer.skip(cut.id, reason)
                skips["unsupported language"] += 1
                continue
            try:
                audio = load_cut_audio(cut)
            except BadAudioError as e:
                logger.warning("skipping %s", e)
                writer.skip(cut.id, e.reason)
                skips[e.reason.split(" (")[0].split(";")[0]] += 1
                continue
            chunk.append(cut)
            audios.append(audio)
            langs.append(lang)
        yield chunk, audios, langs


def store_transcript(cut, transcript, targets=None) -> None:
    fields = custom(cut)
    fields["teacher_text"] = transcript.text
    fields["teacher_tokens"] = transcript.tokens
    fields["teacher_logprobs"] = [round(x, 5) for x in transcript.logprobs]
    fields["teacher_entropy"] = [round(x, 5) for x in transcript.entropies]
    fields["teacher_language"] = transcript.language
    fields["teacher_stop"] = transcript.stop
    fields["teacher_packed"] = transcript.packed
    if targets is not None:
        targets.attach(cut, transcript.targets, transcript.tokens)


def pseudo_label(in_path: str | Path, out_path: str | Path, transcriber: Transcriber,
                 overwrite: bool = False, targets_dir: str | Path | None = None) -> dict:
    """Label every cut of `in_path` into `out_path`; returns counts for the log.

    With `targets_dir` (and `transcriber.options.targets` set), the teacher's distillation
    targets are stored there and attached to each labelled cut (kd_targets.py).
    """
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        logger.info("%s exists; skipping (use --overwrite to redo)", out_path)
        return {"skipped_existing": True}
    cuts = read_cuts(in_path)
    store = None
    if targets_dir is not None:
        if transcriber.options.targets is None:
            raise ValueError("targets_dir needs DecodeOptions.targets")
        store = TargetStore(targets_dir, transcriber.options.targets,
                            model_identity(transcriber.model_dir), transcriber.name)
    writer = ResumableCutWriter(out_path)
    skips: Counter = Counter()
    audio_s, t0 = 0.0, time.time()
    try:
        with tqdm(total=len(cuts), initial=len(writer.done) + len(writer.skipped),
                  desc=f"pseudo-label {Path(in_path).name}", unit="cut", mininterval=5) as bar:
            for chunk, audios, langs in iter_loaded_chunks(cuts, transcriber, writer, skips):
                if chunk:
                    for cut, transcript in zip(chunk, transcriber.transcribe(audios, langs)):
                        store_transcript(cut, transcript, store)
                        writer.add(cut)
                    audio_s += sum(c.duration for c in chunk)
                bar.n = len(writer.done) + len(writer.skipped)
                bar.refresh()
        writer.finish(order=list(cuts.ids))
    finally:
        writer.close()
    wall = time.time() - t0
    stops = Counter(custom(c).get("teacher_stop") for c in read_cuts(out_path))
    summary = {"cuts": len(cuts), "labelled": len(writer.done), "skipped": dict(skips),
               "skipped_ids": dict(writer.skipped),
               "stops": dict(stops), "audio_s": round(audio_s, 1), "wall_s": round(wall, 1),
               "rtf_inverse": round(audio_s / wall, 2) if wall > 0 else None,
               "decoder": transcriber.stats}
    # Beside the manifest, for the filter report (filter cost relative to labelling).
    write_json_atomic(summary, out_path.with_name(out_path.name + ".stats.json"))
    logger.info("%s: labelled %d of %d cuts (%s skipped: %s); stops %s; %.1f s audio in %.1f s",
                out_path, len(writer.done), len(cuts), sum(skips.values()), dict(skips),
                dict(stops), audio_s, wall)
    return summary
