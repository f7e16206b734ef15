"""Fitting fusion on a labelled dev set, and applying it label-free (`udistil fit-fusion`).

Why fit at all: the label-free agreement weights (fusion.py) trust a family because it
agrees with the others, so on real Arabic a weak signal that agrees with a strong one
(consistency, AUROC 0.56) gained weight and the fusion scored below its own best part.
What tracks quality is quality, and a recipe has a labelled dev set (stage 4 scores it
already): the calibration is fitted there, on true WER > 80, and then applied to the
unlabelled pool with no labels.  It is never fitted on a test split.

The calibration, per language of the dev set (plus "*", pooled, for languages the dev
set lacks or has only good or only bad clips of; a language with a few of one kind,
under MIN_PER_CLASS, takes its best single filter: see choose_sparse):
  1. features: each component, oriented higher = worse, as its percentile within the dev
     values of that language (the dev values are stored, as quantiles).  Every filter
     then has one scale, absolute levels carry over from dev to the pool, and a cut's
     fused score depends on no other cut of the pool;
  2. a linear score s = sum_c w_c * feature_c, the weights chosen among candidates by
     repeated cross-validated AUROC on dev (out-of-fold predictions):
       single:<c>   one component alone (weight 1),
       mean:top<k>  the k best components by dev AUROC, weighted by (AUROC - 0.5),
       logistic     an L2-regularised logistic regression on every component;
     so the fusion is a single filter wherever no combination beats it on held-out dev
     clips, which is how it avoids losing to its best part;
  3. the fused value is 100 x P(true WER > 80), with P = sigmoid(a * s + b) fitted on the
     dev clips of that language (Platt scaling).  b carries the language's dev rate of bad
     pseudo-labels: that is the language prior, which reorders across languages only.

A null component (an empty pseudo-label has no token statistics) gets the feature 0.5,
the dev median: it neither accuses nor excuses; the hallucination flags see empty outputs.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from udistil.data.manifests import read_cuts, supervision, write_json_atomic
from udistil.errors import UdistilError
from udistil.evaluate.scoring import BAD_WER, utterance_wer
from udistil.filters.base import cut_language, teacher_field, teacher_text, worse_is_higher

logger = logging.getLogger(__name__)

# Used when no components are given, when present in the set.  chars_per_second has no
# single direction (too slow is as bad as too fast), so it is not a default component.
DEFAULT_COMPONENTS = ("proxy_wer", "consistency", "nll_sum", "nll", "confidence", "entropy",
                      "worst_window", "tail_nll", "entropy_window", "word_nll", "language_confidence",
                      "hallucination", "pesq", "sonar_sim")
POOLED = "*"
QUANTILES = 201
# Fewer good (or bad) dev clips than this in a language: its own fit is noise; use the pooled one.
MIN_PER_CLASS = 4
FOLDS = 5
REPEATS = 6
MAX_MEAN_K = 4
# L2 penalty of the logistic candidate (features in [0, 1]): strong, dev sets are small.
L2 = 1.0
NULL_FEATURE = 0.5
VERSION = 1


# ---- small numerics ----------------------------------------------------------------------
def auroc(scores, positives) -> float | None:
    from udistil.report.filter_quality import auroc as _auroc

    return _auroc(scores, positives)


def ecdf(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-rank percentile of each value within the sorted `reference` (ties count half)."""
    lo = np.searchsorted(reference, values, side="left")
    hi = np.searchsorted(reference, values, side="right")
    return (lo + hi) / (2.0 * len(reference))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 50) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method (the intercept is not penalised)."""
    n, k = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(k + 1)
    penalty = np.diag([l2] * k + [0.0])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -30, 30)))
        grad = design.T @ (p - y) + penalty @ beta
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:k], float(beta[k])


# ---- candidates ----------------------------------------------------------------------------
def candidate_names(components: list[str]) -> list[str]:
    names = [f"single:{c}" for c in components]
    names += [f"mean:top{k}" for k in range(2, min(MAX_MEAN_K, len(components)) + 1)]
    if len(components) > 1:
        names.append("logistic")
    return names


def candidate_weights(name: str, x: np.ndarray, y: np.ndarray, components: list[str]) -> np.ndarray:
    """Weights of candidate `name` fitted on (x, y)."""
    k = len(components)
    if name.startswith("single:"):
        w = np.zeros(k)
        w[components.index(name.split(":", 1)[1])] = 1.0
        return w
    if name.startswith("mean:top"):
        top = int(name[len("mean:top"):])
        aucs = np.array([auroc(x[:, j], y) or 0.5 for j in range(k)])
        w = np.zeros(k)
        for j in np.argsort(-aucs)[:top]:
            w[j] = max(aucs[j] - 0.5, 0.0)
        return w if w.sum() > 0 else np.ones(k) / k
    if name == "logistic":
        return fit_logistic(x, y)[0]
    raise ValueError(name)


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % folds
    return fold


def cross_validated_auroc(name, x, y, components) -> float:
    """Mean over REPEATS of the AUROC of pooled out-of-fold scores."""
    folds = min(FOLDS, int(min(y.sum(), (1 - y).sum())))
    results = []
    for seed in range(REPEATS):
        fold = stratified_folds(y, folds, seed)
        scores = np.empty(len(y))
        for f in range(folds):
            train, test = fold != f, fold == f
            scores[test] = x[test] @ candidate_weights(name, x[train], y[train], components)
        results.append(auroc(scores, y.astype(bool)))
    return float(np.mean(results))


def choose(x, y, components) -> dict:
    """The candidate with the best cross-validated AUROC (ties: the earlier, simpler one)."""
    cv = {name: cross_validated_auroc(name, x, y, components) for name in candidate_names(components)}
    best = max(cv, key=lambda n: (round(cv[n], 6), -list(cv).index(n)))
    w = candidate_weights(best, x, y, components)
    s = x @ w
    a, b = fit_logistic(s[:, None], y, l2=1e-3)
    # The chosen score ranks bad clips higher on held-out dev; a tiny slope keeps that order
    # should Platt scaling on the fitted clips disagree.
    return {"choice": best, "weights": {c: float(v) for c, v in zip(components, w)},
            "slope": max(float(a[0]), 1e-3), "intercept": b, "cv_auroc": {n: round(v, 4) for n, v in cv.items()},
            "dev_auroc": auroc(s, y.astype(bool))}


def choose_sparse(x, y, components, pooled_auroc: dict[str, float | None]) -> dict:
    """A language with a few good or bad dev clips (fewer than MIN_PER_CLASS): its best single.

    Cross-validation needs MIN_PER_CLASS of each; below that a fitted combination is noise,
    and the pooled fit ranks this language's clips with weights learnt on the others (mini
    dev English, 2 bad of 18: the pooled logistic 0.81 against proxy_wer's 0.97 alone).
    One filter, the one that separates this language's few bad clips best (ties: the better
    pooled AUROC), is the least that can be learnt from them; Platt scaling on the
    language's clips keeps its prior.
    """
    # None (a constant column) counts as chance; 0.0 is a real, inverted AUROC and stays.
    in_language = [a if (a := auroc(x[:, j], y.astype(bool))) is not None else 0.5
                   for j in range(len(components))]
    best = max(range(len(components)),
               key=lambda j: (round(in_language[j], 6), pooled_auroc.get(components[j]) or 0.5, -j))
    w = np.zeros(len(components))
    w[best] = 1.0
    a, b = fit_logistic(x[:, best][:, None], y, l2=1e-3)
    return {"choice": f"single:{components[best]}", "sparse": True,
            "weights": {c: float(v) for c, v in zip(components, w)},
            "slope": max(float(a[0]), 1e-3), "intercept": b,
            "cv_auroc": {f"single:{c}": round(v, 4) for c, v in zip(components, in_language)},
            "dev_auroc": in_language[best]}


# ---- data ----------------------------------------------------------------------------------
def oriented_column(cuts, name) -> list[float | None]:
    from udistil.filters import filter_class

    higher_is_worse = filter_class(name).higher_is_worse
    return [worse_is_higher(teacher_field(c, name), higher_is_worse) for c in cuts]


def quantiles(values: list[float]) -> list[float]:
    present = np.asarray([v for v in values if v is not None], dtype=float)
    if len(present) == 0:
        return []
    return [float(v) for v in np.quantile(present, np.linspace(0, 1, min(QUANTILES, len(present))))]


def features(columns: dict[str, list], reference: dict[str, list[float]], components: list[str]) -> np.ndarray:
    n = len(next(iter(columns.values())))
    x = np.full((n, len(components)), NULL_FEATURE)
    for j, c in enumerate(components):
        ref = np.asarray(reference.get(c) or [], dtype=float)
        if len(ref) == 0:
            continue
        present = [i for i, v in enumerate(columns[c]) if v is not None]
        if present:
            x[present, j] = ecdf(ref, np.asarray([columns[c][i] for i in present], dtype=float))
    return x


def fit_block(cuts, true_bad: np.ndarray, components: list[str],
              pooled_auroc: dict[str, float | None] | None = None) -> dict:
    columns = {c: oriented_column(cuts, c) for c in components}
    # A component no dev cut of this block has (wordfreq has no Swahili) is left out here.
    usable = [c for c in components if any(v is not None for v in columns[c])]
    reference = {c: quantiles(columns[c]) for c in usable}
    block = {"n": len(cuts), "bad": int(true_bad.sum()), "components": usable,
             "quantiles": reference,
             "component_auroc": {c: auroc([v for v in columns[c] if v is not None],
                                          [b for v, b in zip(columns[c], true_bad) if v is not None])
                                 for c in usable}}
    fewest = min(true_bad.sum(), (~true_bad).sum())
    if not usable or fewest == 0:
        block["choice"] = None
        return block
    x = features(columns, reference, usable)
    if fewest < MIN_PER_CLASS:
        block.update(choose_sparse(x, true_bad.astype(float), usable, pooled_auroc or {}))
        return block
    block.update(choose(x, true_bad.astype(float), usable))
    return block


def fit_fusion(dev_path, out_path, components: list[str] | None = None) -> dict:
    """Fit the calibration on a labelled, scored dev CutSet and write it as JSON."""
    from udistil.filters import filter_class

    cuts = [c for c in read_cuts(dev_path)
            if teacher_field(c, "teacher_text") is not None and (supervision(c).text or "").strip()]
    if not cuts:
        raise UdistilError(f"{dev_path}: no cut has both a pseudo-label and a reference; fit-fusion needs "
                           "the labelled dev set scored by stage 4")
    names = list(components) if components else list(DEFAULT_COMPONENTS)
    for n in names:
        if not filter_class(n).label_free:
            raise UdistilError(f"fusion is label-free; {n} reads references and cannot be a component")
    names = [n for n in names if any(teacher_field(c, n) is not None for c in cuts)]
    if not names:
        raise UdistilError(f"{dev_path}: no fusion component is scored (any of {', '.join(DEFAULT_COMPONENTS)})")
    bad = np.asarray([utterance_wer(supervision(c).text, teacher_text(c), cut_language(c)) > BAD_WER
                      for c in cuts])
    languages = sorted({cut_language(c) or "" for c in cuts})
    calibration = {"version": VERSION, "dev": str(dev_path), "bad_wer": BAD_WER, "components": names,
                   "languages": {}}
    pooled = fit_block(cuts, bad, names)
    for lang in languages:
        idx = [i for i, c in enumerate(cuts) if (cut_language(c) or "") == lang]
        calibration["languages"][lang] = fit_block([cuts[i] for i in idx], bad[idx], names,
                                                   pooled_auroc=pooled["component_auroc"])
    calibration["languages"][POOLED] = pooled
    if calibration["languages"][POOLED]["choice"] is None or calibration["languages"][POOLED].get("sparse"):
        raise UdistilError(f"{dev_path}: the dev set has fewer than {MIN_PER_CLASS} good or bad pseudo-labels "
                           f"({int(bad.sum())} of {len(bad)} bad); fusion cannot be calibrated on it")
    write_json_atomic(calibration, out_path)
    for lang, block in calibration["languages"].items():
        logger.info("fit-fusion %s: %d dev cuts, %d bad; %s (cv AUROC %s)", lang, block["n"], block["bad"],
                    block.get("choice") or "only good or only bad clips: uses the pooled fit",
                    block.get("cv_auroc", {}).get(block.get("choice"), "-"))
    return calibration


def summary_lines(calibration: dict) -> list[str]:
    """One line per language: what was chosen and its cross-validated dev AUROC beside the best single's."""
    lines = []
    for lang, block in calibration["languages"].items():
        head = f"{lang}: {block['n']} dev cuts, {block['bad']} with WER > {calibration['bad_wer']:g}"
        if not block.get("choice"):
            lines.append(f"{head}: only good or only bad clips; fusion uses the pooled ({POOLED}) fit")
            continue
        if block.get("sparse"):
            lines.append(f"{head}: too few to cross-validate a combination; the best single filter "
                         f"within the language, {block['choice'][len('single:'):]} (dev AUROC "
                         f"{block['dev_auroc']:.3f})")
            continue
        cv = block["cv_auroc"]
        singles = {n: v for n, v in cv.items() if n.startswith("single:")}
        best_single = max(singles, key=singles.get)
        lines.append(f"{head}: {block['choice']} (cv AUROC {cv[block['choice']]:.3f}; best single "
                     f"{best_single[len('single:'):]} {singles[best_single]:.3f}); weights "
                     + ", ".join(f"{c} {w:.2f}" for c, w in block["weights"].items() if w))
    return lines


def read_calibration(path) -> dict:
    try:
        calibration = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UdistilError(f"{path}: cannot read the fusion calibration ({e}); run `udistil fit-fusion`") from e
    if calibration.get("version") != VERSION or POOLED not in calibration.get("languages", {}):
        raise UdistilError(f"{path}: not a fusion calibration of version {VERSION}; rerun `udistil fit-fusion`")
    return calibration


def apply_calibration(calibration: dict, cuts) -> tuple[list[float | None], dict[str, str]]:
    """100 x P(true WER > 80) per cut, label-free; and the block used per language."""
    out: list[float | None] = [None] * len(cuts)
    used = {}
    by_language: dict[str, list[int]] = {}
    for i, c in enumerate(cuts):
        by_language.setdefault(cut_language(c) or "", []).append(i)
    for lang, idx in by_language.items():
        block = calibration["languages"].get(lang)
        key = lang if block is not None and block.get("choice") else POOLED
        block = calibration["languages"][key]
        used[lang] = key
        components = [c for c, w in block["weights"].items() if w != 0]
        subset = [cuts[i] for i in idx]
        columns = {c: oriented_column(subset, c) for c in components}
        x = features(columns, block["quantiles"], components)
        w = np.asarray([block["weights"][c] for c in components])
        s = x @ w
        p = 1.0 / (1.0 + np.exp(-np.clip(block["slope"] * s + block["intercept"], -30, 30)))
        for k, i in enumerate(idx):
            # Every component null: nothing to go on but the prior; say so with a null.
            if all(columns[c][k] is None for c in components):
                continue
            # The 1e-6 * s term keeps the order strict where the sigmoid saturates.
            out[i] = float(100.0 * p[k] + 1e-6 * s[k])
    return out, used
