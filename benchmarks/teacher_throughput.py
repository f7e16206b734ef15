#!/usr/bin/env python3
"""Stage-3 labelling speed against a naive one-clip-at-a-time transformers pipeline.

Both sides use the same packaged whisper-base, the same cuts, greedy decoding (the
pipeline's default is 5-beam search, which would flatter us) and the same torch threads;
they run one after the other in the same process, so the ratio is meaningful even on a
noisy machine.  Prints audio-seconds per wall-second, the ratio, the WER/CER of both, and
the cost of keeping per-token log-probs and entropies.

    . ./path.sh
    python benchmarks/teacher_throughput.py                     # 40 mini cuts (20 clean + 20 noisy)
    python benchmarks/teacher_throughput.py --real-speech 12    # + 12 real clips per language
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import mini_test_cuts, real_speech_cuts  # noqa: E402
from udistil.data.audio import load_cut_audio  # noqa: E402
from udistil.data.manifests import custom, read_cuts, write_cuts  # noqa: E402
from udistil.evaluate.scoring import score_pairs  # noqa: E402
from udistil.log import setup_logging  # noqa: E402
from udistil.models.spec import load_whisper, resolve_model  # noqa: E402
from udistil.teacher.pseudo_label import pseudo_label  # noqa: E402
from udistil.teacher.transcriber import DecodeOptions, Transcriber  # noqa: E402


def naive_pipeline(model_dir: str, cuts) -> tuple[float, list[str]]:
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=model_dir, device="cpu", dtype=torch.float32)
    hyps, t0 = [], time.time()
    for cut in cuts:
        audio = load_cut_audio(cut)
        out = asr({"raw": audio, "sampling_rate": 16000},
                  generate_kwargs={"language": cut.supervisions[0].language, "task": "transcribe",
                                   "num_beams": 1, "do_sample": False})
        hyps.append(out["text"].strip())
    return time.time() - t0, hyps


def ours(model, processor, cuts_path: Path, work: Path, name: str, **options) -> tuple[float, list[str], dict]:
    transcriber = Transcriber(model, processor, DecodeOptions(**options))
    out = work / f"{name}.jsonl.gz"
    t0 = time.time()
    pseudo_label(cuts_path, out, transcriber, overwrite=True)
    wall = time.time() - t0
    labelled = {c.id: custom(c)["teacher_text"] for c in read_cuts(out)}
    return wall, [labelled.get(c.id, "") for c in read_cuts(cuts_path)], transcriber.stats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:whisper-base")
    parser.add_argument("--per-test-set", type=int, default=20, help="mini cuts per test set (clean, noisy)")
    parser.add_argument("--real-speech", type=int, default=0, help="real clips per language to add (0 = none)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    setup_logging()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_teacher_"))
    work.mkdir(parents=True, exist_ok=True)
    cuts = list(mini_test_cuts(work, args.per_test_set))
    if args.real_speech:
        real = real_speech_cuts(limit=args.real_speech)
        if real is None:
            print("real-speech folder not found; mini corpus only")
        else:
            cuts += real
    cuts_path = work / "bench_cuts.jsonl.gz"
    write_cuts(cuts, cuts_path)
    audio_s = sum(c.duration for c in cuts)
    refs = [c.supervisions[0].text for c in cuts]
    langs = [c.supervisions[0].language for c in cuts]
    model_dir = resolve_model(args.model)
    model, processor = load_whisper(model_dir)
    print(f"{len(cuts)} cuts, {audio_s:.1f} s of audio; languages {sorted(set(langs))}; "
          f"torch threads {torch.get_num_threads()}")

    runs = {}
    runs["ours"] = ours(model, processor, cuts_path, work, "ours", batch_size=args.batch_size)
    runs["ours_no_stats"] = ours(model, processor, cuts_path, work, "ours_no_stats",
                                 batch_size=args.batch_size, token_stats=False)
    runs["ours_no_pack"] = ours(model, processor, cuts_path, work, "ours_no_pack",
                                batch_size=args.batch_size, pack=False)
    # Repeat the statistics pair so the overhead figure is not one noisy sample.
    runs["ours_no_stats_2"] = ours(model, processor, cuts_path, work, "ours_no_stats_2",
                                   batch_size=args.batch_size, token_stats=False)
    runs["ours_2"] = ours(model, processor, cuts_path, work, "ours_2", batch_size=args.batch_size)
    naive_wall, naive_hyps = naive_pipeline(model_dir, cuts)

    figures = {"cuts": len(cuts), "audio_s": round(audio_s, 1)}
    print(f"\n{'system':28s} {'wall s':>8s} {'audio s/wall s':>15s} {'WER':>6s} {'CER':>6s}  per-language WER")
    rows = [("naive pipeline (greedy)", naive_wall, naive_hyps, {})] + [
        (name, wall, hyps, stats) for name, (wall, hyps, stats) in runs.items()]
    for name, wall, hyps, stats in rows:
        s = score_pairs(refs, hyps, langs)
        per = " ".join(f"{k}:{v['wer']:.1f}" for k, v in sorted(s["per_language"].items()))
        print(f"{name:28s} {wall:8.1f} {audio_s / wall:15.2f} {s['wer']:6.1f} {s['cer']:6.1f}  {per}")
        figures[name] = {"wall_s": round(wall, 2), "speed": round(audio_s / wall, 3), "wer": s["wer"],
                         "cer": s["cer"], "per_language_wer": {k: v["wer"] for k, v in s["per_language"].items()},
                         "decoder": stats}
    best_ours = min(runs["ours"][0], runs["ours_2"][0])
    best_no_stats = min(runs["ours_no_stats"][0], runs["ours_no_stats_2"][0])
    figures["speedup_vs_naive"] = round(naive_wall / best_ours, 2)
    figures["speedup_unpacked_vs_naive"] = round(naive_wall / runs["ours_no_pack"][0], 2)
    figures["token_stats_overhead_pct"] = round(100 * (best_ours / best_no_stats - 1), 1)
    print(f"\nspeed-up over the naive pipeline: {figures['speedup_vs_naive']}x "
          f"(without packing: {figures['speedup_unpacked_vs_naive']}x)")
    print(f"WER ours - naive: {figures['ours']['wer'] - figures['naive pipeline (greedy)']['wer']:+.1f} absolute")
    print(f"cost of keeping log-probs/entropy: {figures['token_stats_overhead_pct']:+.1f}% "
          "(best of two runs each)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
