#!/usr/bin/env python
"""Cost of each filter per audio second, beside stage-3 decoding.

    . ./path.sh
    python benchmarks/filters.py --in exp/teacher/cuts_dev.jsonl.gz \
        --teacher-logs 'exp/teacher/*/log/pseudo_label.*.log' --model exp/models/teacher

Runs each filter through the real `udistil score` path (udistil.filters.runner) on the
given stage-3 CutSet, one after the other (fusion last, on everything before it), in a
temporary directory, and prints: model load time, scoring wall time (output manifest
written, input read excluded), pure scoring time (the per-cut `filter_seconds`), and seconds per
audio second, also relative to stage 3's decoding (from its logs).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from udistil.data.manifests import read_cuts, write_cuts
from udistil.filters import create_filter
from udistil.filters.runner import score_cuts
from udistil.log import setup_logging
from udistil.report.filter_quality import filter_seconds_per_audio_second, teacher_seconds_per_audio_second

DEFAULT_FILTERS = ["confidence", "entropy", "nll", "nll_sum", "hallucination", "proxy_wer", "consistency",
                   "pesq", "fusion"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in", dest="in_path", required=True, help="stage-3 CutSet")
    parser.add_argument("--filters", nargs="+", default=DEFAULT_FILTERS)
    parser.add_argument("--teacher-logs", default="exp/teacher/*/log/pseudo_label.*.log")
    parser.add_argument("--model", default="exp/models/teacher", help="teacher, for consistency")
    parser.add_argument("--proxy", default="packaged:whisper-tiny.en")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N cuts")
    parser.add_argument("--num-threads", type=int, default=1)
    args = parser.parse_args()
    setup_logging()
    import logging
    import torch

    logging.getLogger("udistil").setLevel(logging.WARNING)
    torch.set_num_threads(args.num_threads)
    cuts = read_cuts(args.in_path)
    if args.limit:
        cuts = cuts.subset(first=args.limit)
    audio_s = sum(c.duration for c in cuts)
    teacher = teacher_seconds_per_audio_second(list(cuts), args.teacher_logs)
    print(f"{len(cuts)} cuts, {audio_s:.1f} s of audio; stage-3 decoding: "
          f"{teacher:.3f} s per audio s" if teacher else "stage-3 decoding time: unknown (no logs)")
    print(f"{'filter':18s} {'load s':>7s} {'wall s':>8s} {'score s':>8s} {'s/audio s':>10s} {'x stage 3':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        current = Path(tmp) / "in.jsonl.gz"
        write_cuts(cuts, current)
        for name in args.filters:
            t0 = time.perf_counter()
            filt = create_filter(name, model=args.model, proxy=args.proxy)
            load = time.perf_counter() - t0
            out = Path(tmp) / f"{name}.jsonl.gz"
            summary = score_cuts(filt, current, out)
            scored = list(read_cuts(out))
            per_audio = filter_seconds_per_audio_second(scored, name)
            wall_per_audio = summary["wall_s"] / audio_s
            rel = f"{wall_per_audio / teacher:10.4f}" if teacher else f"{'-':>10s}"
            print(f"{name:18s} {load:7.2f} {summary['wall_s']:8.2f} {per_audio * audio_s:8.3f} "
                  f"{wall_per_audio:10.5f} {rel}")
            current = out
    print("x stage 3 = scoring wall time (writing the output manifest included; reading it and loading models excluded) per audio "
          "second / stage-3 decoding time per audio second")


if __name__ == "__main__":
    main()
