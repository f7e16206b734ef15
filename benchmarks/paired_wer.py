"""WER of several decodes of the same clips, each beside a baseline with a paired bootstrap.

    python benchmarks/paired_wer.py --baseline teacher=DIR [--language en] [--noise none] NAME=DIR ...

Each DIR is a `udistil decode` output folder (its hyps.jsonl).  For every NAME the table
gives its WER, the baseline's, their difference, and a 95 % interval of the difference from
a paired bootstrap over clips (the same resampled clips score both models; WER pooled over
words in every resample, as the corpus WER is).  Use it before calling a WER gap real: on a
few hundred words one error moves the WER by a few tenths, and clips differ far more than
that from one another.  --noise KIND keeps the clips whose cut records that noise (the mini
corpus's `noise` field: none, white or babble), read from the baseline DIR's cuts.jsonl.gz.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from udistil.evaluate.scoring import count_errors, normalise_pairs


def clip_errors(ref: str, hyp: str, language: str | None) -> tuple[int, int, int]:
    """(word errors, reference words, deleted words) of one clip, after normalisation."""
    counts = count_errors(*normalise_pairs([ref], [hyp], [language]))
    return counts.errors, counts.ref_units, counts.deletions


def per_clip_errors(decode_dir: Path, language: str | None) -> dict[str, tuple[int, int, int]]:
    """{clip id: (word errors, reference words, deleted words)} of one decode, restricted to `language`."""
    rows = [json.loads(line) for line in (decode_dir / "hyps.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if language is None or r.get("lang") == language]
    if not rows:
        raise SystemExit(f"{decode_dir}/hyps.jsonl: no clips{' in ' + language if language else ''}")
    return {r["id"]: clip_errors(r["ref"], r["hyp"], r.get("lang")) for r in rows}


def clips_with_noise(decode_dir: Path, kind: str) -> set[str]:
    """Ids of the decoded cuts whose supervision records `kind` as its noise."""
    from udistil.data.manifests import read_cuts

    path = decode_dir / "cuts.jsonl.gz"
    if not path.is_file():
        raise SystemExit(f"{path}: missing; --noise reads each clip's noise from the decoded cuts")
    return {c.id for c in read_cuts(path)
            if c.supervisions and (c.supervisions[0].custom or {}).get("noise") == kind}


def paired_interval(model: np.ndarray, baseline: np.ndarray, words: np.ndarray, reps: int,
                    seed: int) -> tuple[float, float]:
    """95 % bootstrap interval of WER(model) - WER(baseline), resampling clips."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(words), size=(reps, len(words)))
    total = words[picks].sum(axis=1)
    diffs = 100.0 * (model[picks].sum(axis=1) - baseline[picks].sum(axis=1)) / np.maximum(total, 1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def parse_named(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DECODE_DIR")
    return name, Path(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, type=parse_named, help="NAME=DECODE_DIR")
    parser.add_argument("--language", default=None, help="score only the clips of this language")
    parser.add_argument("--noise", default=None,
                        help="score only the clips whose cut records this noise (mini corpus: none, white, babble)")
    parser.add_argument("--reps", type=int, default=5000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("decodes", nargs="+", type=parse_named, help="NAME=DECODE_DIR")
    args = parser.parse_args(argv)

    base_name, base_dir = args.baseline
    base = per_clip_errors(base_dir, args.language)
    if args.noise is not None:
        kept = clips_with_noise(base_dir, args.noise)
        base = {i: v for i, v in base.items() if i in kept}
        if not base:
            raise SystemExit(f"{base_dir}: no decoded clip records noise {args.noise!r}")
    ids = sorted(base)
    words = np.array([base[i][1] for i in ids])
    base_errors = np.array([base[i][0] for i in ids])
    base_wer = 100.0 * base_errors.sum() / words.sum()
    # Deletions, apart: a model that stops after a clip's first sentence shows here first.
    base_deleted = 100.0 * sum(base[i][2] for i in ids) / words.sum()
    only = "".join(f", {what} {value}" for what, value in (("language", args.language), ("noise", args.noise)) if value)
    print(f"# {len(ids)} clips, {words.sum()} reference words{only}; "
          f"one error = {100.0 / words.sum():.2f} WER; baseline {base_name} = {base_wer:.1f} "
          f"({base_deleted:.1f} % of the words deleted)")
    print("model\tWER\tminus baseline\t95% interval (paired bootstrap)\tdeleted %")
    for name, decode_dir in args.decodes:
        errors_by_id = per_clip_errors(decode_dir, args.language)
        missing = [i for i in ids if i not in errors_by_id]
        if missing:
            raise SystemExit(f"{decode_dir}/hyps.jsonl: lacks {len(missing)} of the baseline's clips, e.g. {missing[0]}")
        errors = np.array([errors_by_id[i][0] for i in ids])
        wer = 100.0 * errors.sum() / words.sum()
        low, high = paired_interval(errors, base_errors, words, args.reps, args.seed)
        deleted = 100.0 * sum(errors_by_id[i][2] for i in ids) / words.sum()
        print(f"{name}\t{wer:.1f}\t{wer - base_wer:+.1f}\t[{low:+.1f}, {high:+.1f}]\t{deleted:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
