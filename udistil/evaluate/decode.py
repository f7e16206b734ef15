"""Stage 7: decode a CutSet with any Whisper model and score it (docs/design.md decode folder).

Decoding reuses the stage-3 machinery (same batching, packing, resumability), writing the
labelled cuts to DIR/cuts.jsonl.gz, then turns them into DIR/hyps.jsonl and DIR/wer.json.
A cut that could not be decoded (unusable audio) stays in the scoring with an empty
hypothesis, so a model is never flattered by the cuts it failed on; its row says why.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from udistil.data.manifests import custom, read_cuts, supervision
from udistil.evaluate.decode_outputs import HYPS_NAME, LABELS_NAME, PER_UTT_NAME, WER_NAME, write_decode_dir
from udistil.parallel.fingerprint import REDO_HINT, StaleOutputError, differences, read_fingerprint, remove_output
from udistil.teacher.pseudo_label import NothingLabelledError, labelling_fingerprint, pseudo_label
from udistil.teacher.transcriber import Transcriber

logger = logging.getLogger(__name__)


def finished_decode_is_current(in_path, out_dir: Path, transcriber: Transcriber, redo_stale: bool) -> bool:
    """True when out_dir holds a finished decode of this input by this model with these
    options (its labels' fingerprint says so).  A finished decode made otherwise (a student
    trained again, another --beam, another test set) stops the run with a message naming it,
    or with `redo_stale` is removed, never reused silently."""
    if not (out_dir / WER_NAME).exists():
        return False
    labelled_path = out_dir / LABELS_NAME
    fp = labelling_fingerprint(in_path, transcriber.name, transcriber.options,
                               dtype=getattr(transcriber, "dtype", None))
    old = read_fingerprint(labelled_path)
    if old is not None and not differences(old, fp):
        return True
    why = "; ".join(differences(old, fp)) if old is not None else "it has no fingerprint"
    if not redo_stale:
        raise StaleOutputError(f"{out_dir}: a finished decode made from another model, input or options "
                               f"({why}); {REDO_HINT}, or delete {out_dir}, to redo it")
    logger.warning("%s: stale decode (%s); decoding again", out_dir, why)
    for name in (WER_NAME, HYPS_NAME, PER_UTT_NAME):
        (out_dir / name).unlink(missing_ok=True)
    remove_output(labelled_path)
    return False


def decode_cuts(in_path: str | Path, out_dir: str | Path, transcriber: Transcriber,
                redo_stale: bool = False) -> dict:
    out_dir = Path(out_dir)
    if finished_decode_is_current(in_path, out_dir, transcriber, redo_stale):
        logger.info("%s exists and matches its fingerprint; skipping", out_dir / WER_NAME)
        return {}
    t0 = time.time()
    labelled_path = out_dir / LABELS_NAME
    try:
        summary = pseudo_label(in_path, labelled_path, transcriber, redo_stale=redo_stale, progress="decode")
        labelled = {c.id: c for c in read_cuts(labelled_path)}
    except NothingLabelledError as e:
        # A test set none of whose cuts could be decoded still gets its score (every
        # hypothesis empty, each row saying why): a model is never flattered by skipping.
        logger.warning("%s", e)
        summary, labelled = {"skipped_ids": e.skipped}, {}
    # Decoding time only (not scoring); a re-run that found the labels done reports ~0.
    wall = time.time() - t0
    skipped = summary.get("skipped_ids", {})
    rows, audio_s = [], 0.0
    for cut in read_cuts(in_path):
        sup = supervision(cut)
        row = {"id": cut.id, "lang": sup.language or "", "ref": sup.text or ""}
        if cut.id in labelled:
            row["hyp"] = custom(labelled[cut.id])["teacher_text"]
            audio_s += cut.duration
        else:
            row["hyp"] = ""
            row["skipped"] = skipped.get(cut.id, "not decoded (see the decode log)")
        rows.append(row)
    result = write_decode_dir(out_dir, rows, audio_s=round(audio_s, 2),
                              wall_s=round(wall, 2),
                              extra={"model": transcriber.name, "skipped": len(rows) - len(labelled)})
    logger.info("%s: WER %s CER %s on %d cuts", out_dir, result.get("wer"), result.get("cer"), len(rows))
    return result
