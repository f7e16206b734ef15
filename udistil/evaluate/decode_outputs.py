"""The decode output folder of docs/design.md (`udistil decode --out DIR`).

DIR/hyps.jsonl   one {"id", "lang", "ref", "hyp"} a line, raw (un-normalised) text
DIR/per_utt.txt  Kaldi-style alignment of the normalised text, four lines per utterance:
                     ID ref a  b  ***
                     ID hyp a  x  c
                     ID op  C  S  I
                     ID #csid 1 1 1 0   (counts of C, S, I, D)
                 (*** marks the empty side of an insertion or deletion, as in Kaldi)
DIR/wer.json     {"wer", "cer", "n", "audio_s", "wall_s", "ref_words", "sub", "del", "ins",
                  "empty_refs", "per_language": {lang: {...}}} plus caller extras

Each file is written to a temporary name and renamed; wer.json is written last, so its
presence means the folder is complete (a stage can skip a set whose wer.json exists).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, NamedTuple

from udistil.data.manifests import write_json_atomic, write_text_atomic
from udistil.errors import UdistilError
from udistil.evaluate.normalize import normalizer_for
from udistil.evaluate.scoring import align_words, score_pairs

HYPS_NAME = "hyps.jsonl"
WER_NAME = "wer.json"
PER_UTT_NAME = "per_utt.txt"
LABELS_NAME = "cuts.jsonl.gz"  # the decoded cuts (stage-3 format), written by evaluate/decode.py
ROW_KEYS = ("id", "lang", "ref", "hyp")
_EMPTY_TOKEN = "***"


class DecodeDir(NamedTuple):
    rows: list[dict]  # {"id", "lang", "ref", "hyp"}
    summary: dict  # the contents of wer.json


def _check_rows(rows: Iterable[dict], out_dir: Path) -> list[dict]:
    checked = []
    for i, row in enumerate(rows):
        missing = [k for k in ("id", "hyp") if k not in row]
        if missing:
            raise UdistilError(
                f"{out_dir}: decode row {i} (cut {row.get('id', '?')}) lacks {', '.join(missing)}"
            )
        # ref is "" when the set has no ground truth; lang may be unknown.
        checked.append({"id": str(row["id"]), "lang": row.get("lang") or "",
                        "ref": row.get("ref") or "", "hyp": row["hyp"] or ""})
    return checked


def format_per_utt(rows: list[dict]) -> str:
    """Kaldi per_utt lines (ref / hyp / op / #csid) for each row, over normalised text."""
    lines = []
    for row in rows:
        normalise = normalizer_for(row["lang"])
        aligned = align_words(normalise(row["ref"]), normalise(row["hyp"]))
        refs = [r if r is not None else _EMPTY_TOKEN for _, r, _ in aligned]
        hyps = [h if h is not None else _EMPTY_TOKEN for _, _, h in aligned]
        ops = [op for op, _, _ in aligned]
        widths = [max(len(r), len(h), 1) for r, h in zip(refs, hyps)]
        uid = row["id"]

        def padded(tokens):
            return " ".join(t.ljust(w) for t, w in zip(tokens, widths)).rstrip()

        counts = {op: ops.count(op) for op in "CSID"}
        # labels padded to one width so the columns of the three lines line up
        lines.append(f"{uid} ref {padded(refs)}".rstrip())
        lines.append(f"{uid} hyp {padded(hyps)}".rstrip())
        lines.append(f"{uid} op  {padded(ops)}".rstrip())
        lines.append(f"{uid} #csid {counts['C']} {counts['S']} {counts['I']} {counts['D']}")
    return "\n".join(lines) + ("\n" if lines else "")


def write_decode_dir(out_dir, rows: Iterable[dict], audio_s: float, wall_s: float,
                     extra: dict | None = None) -> dict:
    """Write hyps.jsonl, per_utt.txt and (last) wer.json into out_dir; returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _check_rows(rows, out_dir)

    hyps_text = "".join(json.dumps({k: row[k] for k in ROW_KEYS}, ensure_ascii=False) + "\n" for row in rows)
    write_text_atomic(hyps_text, out_dir / HYPS_NAME)
    write_text_atomic(format_per_utt(rows), out_dir / PER_UTT_NAME)

    scores = score_pairs([r["ref"] for r in rows], [r["hyp"] for r in rows], [r["lang"] for r in rows])
    summary = {
        "wer": scores["wer"],
        "cer": scores["cer"],
        "n": scores["n"],
        "audio_s": float(audio_s),
        "wall_s": float(wall_s),
        **{k: v for k, v in scores.items() if k not in ("wer", "cer", "n")},
        **(extra or {}),
    }
    write_json_atomic(summary, out_dir / WER_NAME)
    return summary


def read_decode_dir(out_dir) -> DecodeDir:
    """Read a finished decode folder back; errors name the file (and line)."""
    out_dir = Path(out_dir)
    wer_path, hyps_path = out_dir / WER_NAME, out_dir / HYPS_NAME
    for path in (wer_path, hyps_path):
        if not path.exists():
            raise UdistilError(f"{path}: not found; is {out_dir} a finished decode folder?")
    try:
        summary = json.loads(wer_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UdistilError(f"{wer_path}: not valid JSON ({e})") from e
    rows = []
    with open(hyps_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UdistilError(f"{hyps_path}:{line_no}: not valid JSON ({e})") from e
            missing = [k for k in ROW_KEYS if k not in row]
            if missing:
                raise UdistilError(
                    f"{hyps_path}:{line_no}: cut {row.get('id', '?')} lacks {', '.join(missing)}"
                )
            rows.append(row)
    if summary.get("n") != len(rows):
        raise UdistilError(
            f"{out_dir}: wer.json says n={summary.get('n')} but {hyps_path.name} has {len(rows)} rows; "
            "re-run the decode"
        )
    return DecodeDir(rows, summary)
