"""Stage 5: keep the cuts a filter trusts, by threshold or by fraction.

`select_cuts(in_path, out_path, filter_name, threshold=None, keep_fraction=None)` writes
the kept cuts and returns a stats dict (also logged as one line: kept / total, hours).
The training text is the pseudo-label, `supervision.custom["teacher_text"]`, which is what
the student reads (udistil.student.data); `supervision.text` stays the ground truth (or
empty), as docs/design.md's data contract says, so a selected set can still be evaluated.

Rules, shared with the filter-quality report so both select the same cuts:
  * threshold: keep score <= X for higher-is-worse filters, score >= X otherwise
    (the paper's "drop proxy WER > 80" is `--filter proxy_wer --threshold 80`);
  * keep_fraction P: keep the best round(P * total) cuts by score, so filters can be
    compared at equal data size; ties at the boundary are broken by input order;
  * a cut with a null score is dropped (the filter could not vouch for it) unless
    keep_null; how many were dropped for that reason is in the stats;
  * every selection drops cuts with an empty pseudo-label: there is nothing to train on;
  * filter "none" keeps every cut with a pseudo-label (the paper's no-filter baseline).
"""
from __future__ import annotations

import logging
import math
from array import array
from pathlib import Path

from udistil.data.manifests import iter_cuts, write_cuts, write_json_atomic
from udistil.errors import UdistilError
from udistil.filters.base import teacher_field, teacher_text
from udistil.parallel.fingerprint import (differences, fingerprint, fingerprint_path, read_fingerprint,
                                         remove_output)

logger = logging.getLogger(__name__)

NO_FILTER = "none"


def kept_by_threshold(values, higher_is_worse: bool, threshold: float, keep_null: bool = False) -> list[bool]:
    def keep(v):
        if v is None:
            return keep_null
        return v <= threshold if higher_is_worse else v >= threshold
    return [keep(v) for v in values]


def kept_by_fraction(values, higher_is_worse: bool, fraction: float, keep_null: bool = False) -> list[bool]:
    """Keep the best round(fraction * len(values)) scored cuts (nulls rank last)."""
    if not 0.0 <= fraction <= 1.0:
        raise UdistilError(f"--keep-fraction must be between 0 and 1 (got {fraction})")
    budget = int(round(fraction * len(values)))
    scored = [i for i, v in enumerate(values) if v is not None]
    scored.sort(key=lambda i: values[i] if higher_is_worse else -values[i])  # stable: input order on ties
    kept = set(scored[:budget])
    if keep_null:
        kept |= {i for i, v in enumerate(values) if v is None}
    return [i in kept for i in range(len(values))]


def resolve_direction(filter_name: str) -> tuple[bool, float | None]:
    """(higher_is_worse, default threshold) of a filter, without loading its models."""
    from udistil.filters import filter_class

    cls = filter_class(filter_name)
    return cls.higher_is_worse, cls.default_threshold


# A subset's file under data/select/<filter>/ (stage 6 reads it by this name).
SUBSET_NAME = "cuts.jsonl.gz"


def stats_path(out_path) -> Path:
    """data/select/<filter>/cuts.jsonl.gz -> its stats.json; any other name -> <name>.stats.json."""
    out_path = Path(out_path)
    return out_path.with_name("stats.json") if out_path.name == SUBSET_NAME \
        else Path(str(out_path) + ".stats.json")


def nothing_selected(out_path, message: str) -> UdistilError:
    """A subset left from an earlier run would not follow today's scores or rule, and stage 6
    trains on whatever subset exists: remove it (cheap to remake) and say so."""
    out_path = Path(out_path)
    if out_path.exists():
        remove_output(out_path)
        stats_path(out_path).unlink(missing_ok=True)
        message += f" (the earlier {out_path} was removed)"
    return UdistilError(message)


def select_cuts(in_path, out_path, filter_name: str, threshold: float | None = None,
                keep_fraction: float | None = None, keep_null: bool = False) -> dict:
    """Two streaming passes: scores first (floats only), then the kept cuts; memory holds
    the scores, never the cuts."""
    if threshold is not None and keep_fraction is not None:
        raise UdistilError("give --threshold or --keep-fraction, not both")
    # A selection is cheap and deterministic: kept when made from the same scores with the
    # same rule, redone (never reused silently) otherwise.
    fp = fingerprint([in_path], options={"filter": filter_name, "threshold": threshold,
                                         "keep_fraction": keep_fraction, "keep_null": keep_null})
    old = read_fingerprint(out_path)
    if Path(out_path).exists() and old is not None and not differences(old, fp):
        logger.info("%s exists and matches its fingerprint; skipping", out_path)
        return {"skipped_existing": True}
    # Per cut: a byte for "has a pseudo-label", 8 for the duration, the score (filters only).
    values, has_text, durations = [], bytearray(), array("d")
    scored_any = False
    for c in iter_cuts(in_path):
        text = bool(teacher_text(c))
        has_text.append(text)
        durations.append(c.duration)
        if text and filter_name != NO_FILTER:
            values.append(teacher_field(c, filter_name))
            scored_any = scored_any or filter_name in (c.supervisions[0].custom or {})
    total, n_text = len(has_text), sum(has_text)
    if not n_text:
        raise nothing_selected(out_path, f"{in_path}: no cut has a pseudo-label (supervision.custom "
                                         "teacher_text); run stage 3")
    rule = "all cuts with a pseudo-label"
    if filter_name == NO_FILTER:
        keep = [True] * n_text
        nulls = 0
    else:
        higher_is_worse, default = resolve_direction(filter_name)
        if all(v is None for v in values) and not scored_any:
            raise nothing_selected(out_path, f"{in_path}: no cut has a {filter_name} score; "
                                             f"run `udistil score {filter_name}` first")
        nulls = sum(v is None for v in values)
        if keep_fraction is not None:
            keep = kept_by_fraction(values, higher_is_worse, keep_fraction, keep_null)
            rule = f"best {keep_fraction:.0%} by {filter_name}"
        else:
            if threshold is None:
                threshold = default
            if threshold is None:
                raise UdistilError(f"filter {filter_name} has no default threshold; give --threshold or --keep-fraction")
            keep = kept_by_threshold(values, higher_is_worse, threshold, keep_null)
            rule = f"{filter_name} {'<=' if higher_is_worse else '>='} {threshold:g}"
    del values
    # Per input cut: kept or not (cuts without a pseudo-label never are).
    kept_flags, k = bytearray(), iter(keep)
    for text in has_text:
        kept_flags.append(bool(next(k)) if text else False)
    del keep
    n_kept = sum(kept_flags)
    if not n_kept:
        raise nothing_selected(out_path, f"{in_path}: selection '{rule}' keeps no cut; loosen the threshold")
    fingerprint_path(out_path).unlink(missing_ok=True)
    write_cuts((c for c, flag in zip(iter_cuts(in_path), kept_flags) if flag), out_path)
    write_json_atomic(fp, fingerprint_path(out_path))
    stats = {
        "filter": filter_name, "rule": rule, "kept": n_kept, "total": total,
        "empty_pseudo_labels": total - n_text,
        "null_scores": nulls, "null_kept": bool(keep_null),
        "hours_kept": round(sum(d for d, f in zip(durations, kept_flags) if f) / 3600, 4),
        "hours_total": round(sum(durations) / 3600, 4),
    }
    write_json_atomic(stats, stats_path(out_path))
    logger.info("select %s (%s): kept %d / %d cuts, %.2f / %.2f h; %d empty pseudo-labels, %d null scores %s",
                filter_name, rule, n_kept, total, stats["hours_kept"], stats["hours_total"],
                stats["empty_pseudo_labels"], nulls, "kept" if keep_null else "dropped")
    return stats


def parse_thresholds(spec: str) -> dict[str, float]:
    """'oracle_wer:80 proxy_wer:80' -> {'oracle_wer': 80.0, 'proxy_wer': 80.0}."""
    thresholds = {}
    for item in spec.split():
        name, sep, value = item.partition(":")
        try:
            thresholds[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UdistilError(f"threshold '{item}': expected FILTER:VALUE (e.g. proxy_wer:80)")
    return thresholds


def rule_for(filter_name: str, thresholds: dict[str, float], fallback_fraction: float) -> dict:
    """The selection rule of one filter in a stage-5 sweep: the user's threshold if given,
    else the filter's own default threshold, else (no natural threshold: nll_sum, sonar_sim,
    ...) the fallback kept fraction, so those filters are compared at equal data size."""
    if filter_name == NO_FILTER:
        return {}
    if filter_name in thresholds:
        return {"threshold": thresholds[filter_name]}
    _, default = resolve_direction(filter_name)
    return {} if default is not None else {"keep_fraction": fallback_fraction}


def select_each(in_path, out_dir, filter_names, thresholds: dict[str, float] | None = None,
                fallback_fraction: float = 0.5, keep_null: bool = False) -> dict[str, dict | str]:
    """Stage 5 in one process: `out_dir/<filter>/cuts.jsonl.gz` for every filter.

    A filter that cannot select (no scores, e.g. oracle_wer on an unlabelled set, or a rule
    that keeps nothing) is reported by its message and skipped; the others still run.
    Returns filter -> stats dict, or -> the error message of a skipped filter."""
    thresholds = thresholds or {}
    unknown = sorted(set(thresholds) - set(filter_names))
    if unknown:
        raise UdistilError(f"thresholds given for filters not selected: {', '.join(unknown)}")
    for name in filter_names:  # a misspelt filter is the user's error, not a skipped subset
        if name != NO_FILTER:
            resolve_direction(name)
    results: dict[str, dict | str] = {}
    for name in filter_names:
        try:
            rule = rule_for(name, thresholds, fallback_fraction)
            results[name] = select_cuts(in_path, Path(out_dir) / name / SUBSET_NAME, name,
                                        keep_null=keep_null, **rule)
        except UdistilError as e:
            logger.warning("no %s/%s: %s", out_dir, name, e)
            results[name] = str(e)
    return results


def default_selection_fraction(values, higher_is_worse, threshold) -> float:
    """Fraction of cuts a threshold keeps (for comparing other filters at equal size)."""
    kept = kept_by_threshold(values, higher_is_worse, threshold)
    return sum(kept) / len(kept) if kept else math.nan
