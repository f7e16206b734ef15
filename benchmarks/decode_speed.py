#!/usr/bin/env python3
"""Decoding speed of students against their teacher through `udistil decode`'s own engine.

Each model decodes the same cuts with the Transcriber that stage 7 uses (greedy, batched,
language forced from the manifest, each model under its own audio-context rule).  The
models take turns, and the whole round is repeated: the fastest round per model is kept,
so load from other processes hits every model alike and is filtered out.  Audio is loaded
once and not timed.  WER comes from the same hypotheses.

    python benchmarks/decode_speed.py --teacher exp/models/teacher \
        --models exp/init_student_6-2,exp/student_6-2_fusion/best \
        --cuts data/cuts_test_clean.jsonl.gz --repeats 3 --num-threads 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--models", required=True, help="comma-separated model dirs or specs")
    parser.add_argument("--cuts", required=True, nargs="+")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    from udistil.data.audio import load_cut_audio
    from udistil.data.manifests import read_cuts, supervision
    from udistil.evaluate.scoring import score_pairs
    from udistil.teacher.transcriber import DecodeOptions, Transcriber

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    cuts = [c for path in args.cuts for c in read_cuts(path)]
    audios = [load_cut_audio(c) for c in cuts]
    langs = [supervision(c).language for c in cuts]
    audio_s = sum(len(a) for a in audios) / 16000
    specs = [args.teacher] + [m for m in args.models.split(",") if m]
    transcribers = {m: Transcriber.from_spec(m, DecodeOptions(batch_size=args.batch_size)) for m in specs}
    best, hyps = {m: float("inf") for m in specs}, {}
    for _ in range(args.repeats):
        for spec, transcriber in transcribers.items():
            t0 = time.perf_counter()
            out = transcriber.transcribe(audios, langs)
            best[spec] = min(best[spec], time.perf_counter() - t0)
            hyps[spec] = [t.text for t in out]
    results = {"cuts": len(cuts), "audio_s": round(audio_s, 1), "threads": torch.get_num_threads(),
               "repeats": args.repeats, "models": {}}
    for spec in specs:
        score = score_pairs([supervision(c).text or "" for c in cuts], hyps[spec], langs)
        results["models"][spec] = {
            "wall_s": round(best[spec], 2), "audio_s_per_s": round(audio_s / best[spec], 2),
            "speed_x_teacher": round(best[args.teacher] / best[spec], 2),
            "wer": score.get("wer"), "per_language_wer": {k: v.get("wer") for k, v in score.get("per_language", {}).items()},
            "context": transcribers[spec].context.describe()}
        print(spec, json.dumps(results["models"][spec]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
