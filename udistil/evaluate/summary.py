"""A short WER/CER table over decode folders (what ./run.sh prints at the end)."""
from __future__ import annotations

from pathlib import Path

from udistil.evaluate.decode_outputs import read_decode_dir


def one_decimal(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def summary_table(decode_dirs: list[str | Path]) -> str:
    """Markdown table: one row per decode folder, overall and per-language WER/CER."""
    rows, languages = [], set()
    for d in decode_dirs:
        summary = read_decode_dir(d).summary
        rows.append((Path(d), summary))
        languages.update(summary.get("per_language", {}))
    languages = sorted(languages)
    header = ["decode", "n", "WER", "CER"] + [f"{lang} WER/CER" for lang in languages] + ["audio s / wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path, s in rows:
        per = s.get("per_language", {})
        cells = [f"{path.parent.name}/{path.name}", str(s.get("n")), one_decimal(s.get("wer")), one_decimal(s.get("cer"))]
        cells += [f"{one_decimal(per[l]['wer'])} / {one_decimal(per[l]['cer'])}" if l in per else "" for l in languages]
        speed = s["audio_s"] / s["wall_s"] if s.get("wall_s") else None
        cells.append(one_decimal(speed))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
