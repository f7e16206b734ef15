"""Stage 3's labels on long windows: how many reference words a window's label deletes,
against decoding the same clips one by one.

    . ./path.sh
    udistil prepare-mini-corpus --out-dir W/data/manifests --seed 1234 --num-train 150 --num-dev 60 --num-test 40
    udistil prepare-cuts --recordings W/data/manifests/mini_recordings_dev.jsonl.gz \
        --supervisions W/data/manifests/mini_supervisions_dev.jsonl.gz --out W/data/cuts_dev.jsonl.gz
    nice -n 5 python benchmarks/label_windows.py --cuts W/data/cuts_dev.jsonl.gz --out W/label_windows.json

Clips of one language are joined, in manifest order, with 0.5-2 s of silence between them
into windows of 3 to 6 clips and 20 to 30 s (a window ends at the first clip that would
take it past 30 s, or at 6 clips).  Each window is labelled as stage 3 labels a cut (the
teacher's Transcriber, greedy) once per --modes entry (DecodeOptions.timestamps), and its
clips are labelled one by one with the default options.  The figures are pooled over the
windows, per language: reference words, deletions and WER (scoring.py's normalisation).
The target: a window's label deletes at most 2 points more of the reference words than the
clip-by-clip labels do.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def build_windows(clips, seed: int, max_windows: int, min_seconds=20.0, max_seconds=30.0,
                  min_clips=3, max_clips=6):
    """Windows of clips of one language (audio, the members' indices)."""
    rng = np.random.default_rng(seed)
    windows, i = [], 0
    while i < len(clips) and len(windows) < max_windows:
        members, parts, seconds = [], [], 0.0
        while i < len(clips) and len(members) < max_clips:
            gap = rng.uniform(0.5, 2.0) if members else 0.0
            length = len(clips[i]["audio"]) / SAMPLE_RATE
            if seconds + gap + length > max_seconds:
                break
            if members:
                parts.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
            parts.append(clips[i]["audio"])
            members.append(i)
            seconds += gap + length
            i += 1
        if not members:  # a single clip longer than the window: skip it
            i += 1
            continue
        if len(members) >= min_clips and seconds >= min_seconds:
            windows.append({"audio": np.concatenate(parts), "members": members})
    return windows


def main():
    from udistil.data.audio import load_cut_audio
    from udistil.data.manifests import read_cuts, supervision
    from udistil.evaluate.scoring import count_errors, normalise_pairs
    from udistil.teacher.transcriber import DecodeOptions, Transcriber

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", default="packaged:whisper-base")
    parser.add_argument("--languages", default="en")
    parser.add_argument("--modes", default="never,auto",
                        help="the window labels' options: DecodeOptions.timestamps, optionally "
                             "followed by +splitS to cut clips longer than S seconds into pieces of at most S (e.g. never+split10)")
    parser.add_argument("--max-windows", type=int, default=10, help="per language")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    by_language: dict[str, list] = {}
    for cut in read_cuts(args.cuts):
        sup = supervision(cut)
        by_language.setdefault(sup.language, []).append({"ref": sup.text, "audio": load_cut_audio(cut)})
    from udistil.models.spec import load_whisper

    model, processor = load_whisper(args.model)
    clip_labeller = Transcriber(model, processor, DecodeOptions(), name=args.model)
    report = {"model": args.model, "cuts": str(args.cuts), "languages": {}}
    for language in args.languages.split(","):
        windows = build_windows(by_language.get(language, []), args.seed, args.max_windows)
        if not windows:
            print(f"no {language} windows in {args.cuts}", file=sys.stderr)
            continue
        clips = by_language[language]
        refs = [" ".join(clips[m]["ref"] for m in w["members"]) for w in windows]
        rows = {}
        members = [m for w in windows for m in w["members"]]
        t0 = time.perf_counter()
        texts = [t.text for t in clip_labeller.transcribe([clips[m]["audio"] for m in members],
                                                          [language] * len(members))]
        wall = time.perf_counter() - t0
        by_clip = dict(zip(members, texts))
        hyps = {"clip_by_clip": ([" ".join(by_clip[m] for m in w["members"]) for w in windows], wall)}
        for entry in args.modes.split(","):
            mode, _, split = entry.partition("+split")
            labeller = Transcriber(model, processor, DecodeOptions(timestamps=mode, split_above=float(split or 0),
                                                                      split_piece=float(split or 8)),
                                   name=args.model)
            t0 = time.perf_counter()
            window_texts = [t.text for t in labeller.transcribe([w["audio"] for w in windows],
                                                                [language] * len(windows))]
            hyps[f"window_timestamps_{entry}"] = (window_texts, time.perf_counter() - t0)
        for name, (texts, wall) in hyps.items():
            counts = count_errors(*normalise_pairs(refs, texts, [language] * len(refs)))
            ref_words = counts.ref_units
            rows[name] = {"wer": round(counts.rate(), 2), "deletions": counts.deletions,
                          "deleted_pct": round(100 * counts.deletions / max(ref_words, 1), 2),
                          "wall_s": round(wall, 1)}
        base = rows["clip_by_clip"]["deleted_pct"]
        for name, row in rows.items():
            row["deleted_pct_over_clips"] = round(row["deleted_pct"] - base, 2)
        seconds = [len(w["audio"]) / SAMPLE_RATE for w in windows]
        report["languages"][language] = {
            "windows": len(windows), "clips": len(members), "ref_words": ref_words,
            "window_seconds": [round(min(seconds), 1), round(max(seconds), 1)], **rows}
        print(json.dumps({language: report["languages"][language]}), file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
