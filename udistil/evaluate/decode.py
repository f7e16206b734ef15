"""Stage 7: decode a CutSet with any Whisper model and score it (DESIGN.md decode folder).

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
from udistil.evaluate.decode_outputs import WER_NAME, write_decode_dir
from udistil.teacher.pseudo_label import NothingLabelledError, pseudo_label
from udistil.teacher.transcriber import Transcriber

logger = logging.getLogger(__name__)


def decode_cuts(in_path: str | Path, out_dir: str | Path, transcriber: Transcriber) -> dict:
    out_dir = Path(out_dir)
    if (out_dir / WER_NAME).exists():
        logger.info("%s exists; skipping", out_dir / WER_NAME)
        return {}
    t0 = time.time()
    labelled_path = out_dir / "cuts.jsonl.gz"
    try:
        summary = pseudo_label(in_path, labelled_path, transcriber)
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
