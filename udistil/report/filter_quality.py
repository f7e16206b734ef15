"""Filter-quality report: how well each label-free score finds bad pseudo-labels.

Needs references (a labelled dev set, e.g. the mini corpus).  For every filter column
present in the scored CutSet, per language and overall:
  * AUROC for detecting a bad pseudo-label, true WER > 80 (the paper's measure);
  * Spearman rho between the score (oriented higher = worse) and true WER;
  * the true (pooled) WER of the set kept at the filter's default threshold, and of the
    set kept at equal size: the fraction the supervised oracle (WER <= 80) keeps;
  * the filter's cost per audio second relative to stage-3 decoding.
Writes `<out>/filter_quality.md`, `<out>/filter_quality.json` and one PNG per filter
(score against true WER, one colour per language).

Above the per-language sections, one table gives every filter's AUROC per language, overall,
and overall without the language prior: the AUROC over the pairs of a bad and a good clip
of the same language only, so that only the order inside each language counts.  A score that
ranks well overall but not without the prior (fusion's language prior, on a set mixing an
easy and a hard language) owes that to the language alone; the "language prior alone"
line scores each cut by its language's mean, which is useless (0.5) within any language.

A cut with a null score is left out of that filter's AUROC and rho (the `scored` column
says how many were scored), and is dropped by its selections, as stage 5 does.

The manifest is streamed once and each cut reduced to what the report reads (its texts,
language, duration and scores: `report_view`), never held whole: a stage-3 cut carries its
per-token lists and stored-target manifests, several KB each, which a training pool of
hundreds of thousands of cuts would multiply.
"""
from __future__ import annotations

import glob
import json
import logging
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from udistil.data.manifests import iter_cuts, supervision, write_json_atomic, write_text_atomic
from udistil.errors import UdistilError
from udistil.evaluate.normalize import has_reference
from udistil.evaluate.scoring import BAD_WER, score_pairs, utterance_wer
from udistil.filters import FILTERS, filter_class
from udistil.filters.base import cut_language, teacher_field, teacher_text, worse_is_higher
from udistil.select.selection import kept_by_fraction, kept_by_threshold

logger = logging.getLogger(__name__)

# The report's markdown, in the output directory (RESULTS.md includes it from there).
MARKDOWN_NAME = "filter_quality.md"
ALL = "all"
# Stage 3 logs "<out>: labelled N of M cuts (...); stops {...}; A s audio in W s".
_TEACHER_LOG_LINE = re.compile(r"([\d.]+) s audio in ([\d.]+) s")


# Fewer cuts than this in the bad or the good class: an AUROC would be 0, 1 or a step of
# 1/n, not a measurement, so none is given (and the report says why).
MIN_CLASS_CUTS = 2


def auroc(scores, positives, min_class: int = MIN_CLASS_CUTS) -> float | None:
    """Area under the ROC curve of `scores` (higher = more likely positive) for boolean
    `positives`; ties count one half (Mann-Whitney U / (n_pos * n_neg)).  None when a
    class has fewer than `min_class` cuts."""
    from scipy.stats import rankdata  # here: scipy.stats costs ~1 s at start-up
    scores = np.asarray(scores, dtype=float)
    positives = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos < max(min_class, 1) or n_neg < max(min_class, 1):
        return None
    ranks = rankdata(scores, method="average")
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def spearman(scores, truth) -> float | None:
    from scipy.stats import spearmanr  # here: scipy.stats costs ~1 s at start-up
    if len(scores) < 3 or len(set(scores)) < 2 or len(set(truth)) < 2:
        return None
    return float(spearmanr(scores, truth).statistic)


def kept_wer(cuts, kept) -> float | None:
    """Pooled true WER (percent) of the pseudo-labels of the kept cuts."""
    chosen = [c for c, k in zip(cuts, kept) if k]
    if not chosen:
        return None
    return score_pairs([supervision(c).text or "" for c in chosen], [teacher_text(c) for c in chosen],
                       [cut_language(c) for c in chosen])["wer"]


def teacher_seconds_per_audio_second(cuts, log_glob: str | None) -> float | None:
    """Stage-3 decoding cost: per-cut `teacher_seconds` if stage 3 stored it, else its logs."""
    per_cut = [teacher_field(c, "teacher_seconds") for c in cuts]
    if all(v is not None for v in per_cut) and cuts:
        return sum(per_cut) / sum(c.duration for c in cuts)
    audio = wall = 0.0
    for path in sorted(glob.glob(log_glob or "")):
        if path.endswith(".stats.json"):  # written by pseudo-label beside each shard
            stats = json.loads(Path(path).read_text())
            audio += stats.get("audio_s") or 0.0
            wall += stats.get("wall_s") or 0.0
            continue
        for match in _TEACHER_LOG_LINE.finditer(Path(path).read_text(errors="replace")):
            audio += float(match.group(1))
            wall += float(match.group(2))
    return wall / audio if audio > 0 else None


def filter_seconds_per_audio_second(cuts, name) -> float | None:
    times = [(teacher_field(c, "filter_seconds") or {}).get(name) for c in cuts]
    if any(t is None for t in times) or not cuts:
        return None
    return sum(times) / sum(c.duration for c in cuts)


def evaluate_filter(name, cuts, true_wer, equal_fraction) -> dict:
    cls = filter_class(name)
    raw = [teacher_field(c, name) for c in cuts]
    oriented = [worse_is_higher(v, cls.higher_is_worse) for v in raw]
    scored = [i for i, v in enumerate(oriented) if v is not None]
    result = {"n": len(cuts), "scored": len(scored), "bad": sum(true_wer[i] > BAD_WER for i in scored)}
    result["auroc"] = auroc([oriented[i] for i in scored], [true_wer[i] > BAD_WER for i in scored])
    result["spearman"] = spearman([oriented[i] for i in scored], [true_wer[i] for i in scored])
    if cls.default_threshold is not None:
        kept = kept_by_threshold(raw, cls.higher_is_worse, cls.default_threshold)
        result.update(threshold=cls.default_threshold, kept_threshold=sum(kept), wer_threshold=kept_wer(cuts, kept))
    kept = kept_by_fraction(raw, cls.higher_is_worse, equal_fraction)
    result.update(kept_fraction=sum(kept), wer_fraction=kept_wer(cuts, kept))
    return result


def filters_present(cuts) -> list[str]:
    present = [n for n in FILTERS if any(teacher_field(c, n) is not None for c in cuts)]
    return present


def has_references(in_path) -> bool:
    """Streamed: stops at the first cut with a reference."""
    return any(has_reference(supervision(c).text, cut_language(c)) for c in iter_cuts(in_path))


# What the report reads of a supervision's custom fields (besides the filters' scores).
_REPORT_FIELDS = ("teacher_text", "teacher_language", "teacher_seconds", "filter_seconds")


def report_view(cut):
    """The part of a cut the report reads, as a cut-like object (same accessors)."""
    sup = supervision(cut)
    custom = {k: v for k, v in (sup.custom or {}).items() if k in FILTERS or k in _REPORT_FIELDS}
    return SimpleNamespace(id=cut.id, duration=cut.duration, supervisions=[
        SimpleNamespace(text=sup.text, language=sup.language, custom=custom)])


def filter_quality(in_path, out_dir, teacher_logs: str | None = None, plots: bool = True) -> dict:
    cuts = [report_view(c) for c in iter_cuts(in_path)
            if teacher_field(c, "teacher_text") is not None and has_reference(supervision(c).text, cut_language(c))]
    if not cuts:
        raise UdistilError(f"{in_path}: no cut has both a pseudo-label and a reference; the filter-quality "
                           "report needs a labelled, pseudo-labelled and scored set (e.g. the dev set)")
    names = filters_present(cuts)
    if not names:
        raise UdistilError(f"{in_path}: no filter scores found; run `udistil score FILTER` first")
    teacher_cost = teacher_seconds_per_audio_second(cuts, teacher_logs)
    languages = sorted({cut_language(c) or "" for c in cuts})
    report = {"input": str(in_path), "cuts": len(cuts), "bad_wer": BAD_WER,
              "teacher_seconds_per_audio_second": teacher_cost, "languages": {}}
    for lang in [ALL] + languages:
        subset = cuts if lang == ALL else [c for c in cuts if (cut_language(c) or "") == lang]
        true_wer = [utterance_wer(supervision(c).text, teacher_text(c), cut_language(c)) for c in subset]
        oracle_kept = [w <= BAD_WER for w in true_wer]
        fraction = sum(oracle_kept) / len(subset)
        block = {"n": len(subset), "bad": sum(w > BAD_WER for w in true_wer), "equal_fraction": fraction,
                 "wer_all": kept_wer(subset, [True] * len(subset)),
                 "wer_oracle": kept_wer(subset, oracle_kept), "filters": {}}
        for name in names:
            block["filters"][name] = evaluate_filter(name, subset, true_wer, fraction)
        good = block["n"] - block["bad"]
        if min(block["bad"], good) < MIN_CLASS_CUTS:
            block["warning"] = (f"{block['bad']} bad and {good} good cuts: no AUROC (needs at least "
                                f"{MIN_CLASS_CUTS} of each)")
            logger.warning("%s, %s: %s", in_path, lang, block["warning"])
        report["languages"][lang] = block
    report["summary"] = language_summary(cuts, names, languages)
    for name in names:
        cost = filter_seconds_per_audio_second(cuts, name)
        report.setdefault("cost", {})[name] = {
            "seconds_per_audio_second": cost,
            "relative_to_stage3": cost / teacher_cost if cost is not None and teacher_cost else None}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report, out_dir / "filter_quality.json")
    write_text_atomic(markdown_table(report), out_dir / MARKDOWN_NAME)
    if plots:
        for name in names:
            plot_filter(name, cuts, out_dir / f"filter_{name}.png")
    logger.info("filter-quality report for %d filters over %d cuts written to %s", len(names), len(cuts), out_dir)
    return report


def within_language_auroc(values, positives, languages) -> float | None:
    """AUROC over the (bad, good) pairs of the same language only: what a score knows
    beyond the language, whatever the languages' rates of bad clips."""
    n_pos = sum(bool(p) for p in positives)
    if min(n_pos, len(positives) - n_pos) < MIN_CLASS_CUTS:
        return None
    u = pairs = 0.0
    for lang in set(languages):
        idx = [i for i, l in enumerate(languages) if l == lang]
        pos = sum(bool(positives[i]) for i in idx)
        # Pooled over languages: a language's class of one still gives its pairs.
        a = auroc([values[i] for i in idx], [positives[i] for i in idx], min_class=1)
        if a is not None:
            u += a * pos * (len(idx) - pos)
            pairs += pos * (len(idx) - pos)
    return u / pairs if pairs else None


def language_summary(cuts, names, languages) -> dict:
    """AUROC per filter: per language, overall, overall without the language prior, and the
    prior alone (each cut scored by its language's mean score)."""
    cut_langs = [cut_language(c) or "" for c in cuts]
    bad = [utterance_wer(supervision(c).text, teacher_text(c), cut_language(c)) > BAD_WER for c in cuts]
    summary = {}
    for name in names:
        oriented = [worse_is_higher(teacher_field(c, name), filter_class(name).higher_is_worse) for c in cuts]
        scored = [i for i, v in enumerate(oriented) if v is not None]

        def auc(values, subset):
            return auroc([values[i] for i in subset], [bad[i] for i in subset])

        means = {l: np.mean([oriented[i] for i in scored if cut_langs[i] == l] or [0.0]) for l in languages}
        row = {lang: auc(oriented, [i for i in scored if cut_langs[i] == lang]) for lang in languages}
        row[ALL] = auc(oriented, scored)
        row["without_language_prior"] = within_language_auroc(
            [oriented[i] for i in scored], [bad[i] for i in scored], [cut_langs[i] for i in scored])
        row["language_prior_alone"] = auc([means[l] for l in cut_langs], scored)
        summary[name] = row
    return summary


def summary_table(report) -> list[str]:
    summary = report.get("summary") or {}
    if not summary:
        return []
    languages = [l for l in report["languages"] if l != ALL]
    lines = ["## AUROC (true WER > 80) per language", "",
             "| filter | " + " | ".join(languages) + " | all | all, without language prior |",
             "|---|" + "---|" * (len(languages) + 2)]
    ordered = sorted(summary.items(), key=lambda kv: -(kv[1]["without_language_prior"] or -1))
    for name, row in ordered:
        lines.append(f"| {name} | " + " | ".join(_fmt(row[l], 3) for l in languages)
                     + f" | {_fmt(row[ALL], 3)} | {_fmt(row['without_language_prior'], 3)} |")
    if "fusion" in summary and len(languages) > 1:
        lines += ["", f"Language prior alone (each cut scored by its language's mean fusion): AUROC "
                  f"{_fmt(summary['fusion']['language_prior_alone'], 3)} overall, 0.500 within every language "
                  "(useless within a language)."]
    return lines + [""]


def _fmt(value, digits=2, suffix="") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}{suffix}"


def markdown_table(report) -> str:
    lines = [f"# Filter quality ({report['input']})", "",
             f"Bad pseudo-label: true WER > {report['bad_wer']:g}. AUROC and Spearman rho use the scored cuts "
             "(score oriented higher = worse). Kept WER: pooled true WER of the selected pseudo-labels, at "
             "the filter's default threshold and at the fraction the oracle (WER <= 80) keeps. Cost: the "
             "filter's seconds per audio second relative to stage-3 decoding "
             f"({_fmt(report['teacher_seconds_per_audio_second'], 3)} s per audio s).", ""]
    lines += summary_table(report)
    for lang, block in report["languages"].items():
        lines += [f"## {lang} ({block['n']} cuts, {block['bad']} bad; no filter WER "
                  f"{_fmt(block['wer_all'], 1)}, oracle-kept WER {_fmt(block['wer_oracle'], 1)} at "
                  f"{block['equal_fraction']:.0%} kept)", ""]
        if block.get("warning"):
            lines += [f"Warning: {block['warning']}.", ""]
        lines += ["| filter | direction | scored | bad | AUROC | Spearman | threshold | kept @thr | "
                  "WER @thr | WER @equal fraction | cost ×stage 3 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        ordered = sorted(block["filters"].items(), key=lambda kv: -(kv[1]["auroc"] if kv[1]["auroc"] is not None else -1))
        for name, r in ordered:
            cls = filter_class(name)
            cost = report.get("cost", {}).get(name, {}).get("relative_to_stage3")
            label = name + ("" if cls.label_free else " (oracle)")
            lines.append(
                f"| {label} | {'↑worse' if cls.higher_is_worse else '↑better'} | {r['scored']}/{r['n']} | {r['bad']} | "
                f"{_fmt(r['auroc'], 3)} | {_fmt(r['spearman'], 3)} | {_fmt(r.get('threshold'), 2)} | "
                f"{r.get('kept_threshold', '–')} | {_fmt(r.get('wer_threshold'), 1)} | "
                f"{_fmt(r['wer_fraction'], 1)} ({r['kept_fraction']}) | {_fmt(cost, 4)} |")
        lines.append("")
    return "\n".join(lines)


def plot_filter(name, cuts, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cls = filter_class(name)
    fig, ax = plt.subplots(figsize=(5, 4))
    for lang in sorted({cut_language(c) or "" for c in cuts}):
        pts = [(teacher_field(c, name), utterance_wer(supervision(c).text, teacher_text(c), cut_language(c)))
               for c in cuts if (cut_language(c) or "") == lang and teacher_field(c, name) is not None]
        if pts:
            ax.scatter(*zip(*pts), s=14, alpha=0.7, label=lang or "?")
    ax.axhline(BAD_WER, color="grey", lw=0.8, ls="--")
    if cls.default_threshold is not None:
        ax.axvline(cls.default_threshold, color="red", lw=0.8, ls=":")
    ax.set_xlabel(f"{name} ({'higher = worse' if cls.higher_is_worse else 'higher = better'})")
    ax.set_ylabel("true WER of the pseudo-label (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
