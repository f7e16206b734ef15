#!/usr/bin/env python3
"""Decoding speed of a student against its teacher on the same cuts, same batches.

Both models decode every batch greedily with `generate()` (language and task forced,
no timestamps) from the same features; the teacher and the student take turns batch by
batch, so load from other processes on the machine hits both alike.  Feature extraction
is shared and not timed.  Example (mini corpus, 2 CPU threads):

    python benchmarks/student_speed.py --teacher exp/models/whisper-base \
        --student exp/student_3-2_nofilter/best --cuts data/cuts_test_clean.jsonl.gz \
        --batch-size 8 --num-threads 2 --out exp/bench/student_speed.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def batches_by_language(cuts, batch_size):
    by_lang = defaultdict(list)
    for cut in cuts:
        by_lang[cut.supervisions[0].language].append(cut)
    for lang in sorted(by_lang):
        group = by_lang[lang]
        for i in range(0, len(group), batch_size):
            yield lang, group[i:i + batch_size]


def decode(model, features, language, max_new_tokens, min_new_tokens=None):
    import torch

    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(features, language=language, task="transcribe", return_timestamps=False,
                             max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                             num_beams=1, do_sample=False)
        return time.perf_counter() - start, out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--cuts", action="append", default=[],
                        help="manifest(s) to decode (repeatable); default: a freshly synthesised "
                             "mini-corpus test_clean + test_noisy (benchmarks/common.py)")
    parser.add_argument("--per-test-set", type=int, default=12,
                        help="cuts per mini test set when no --cuts is given")
    parser.add_argument("--limit", type=int, default=None, help="first N cuts (by id) of each manifest")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--same-length", type=int, default=None,
                        help="make both models generate exactly N tokens per cut: compares the "
                             "architectures alone (e.g. an untrained student, which babbles until "
                             "--max-new-tokens, against its teacher)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="decode each batch this many times per model and keep the fastest "
                             "(robust to load from other processes on a shared machine)")
    parser.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    import torch

    from common import mini_test_cuts
    from udistil.data.audio import load_cut_audio
    from udistil.data.manifests import read_cuts
    from udistil.errors import BadAudioError
    from udistil.models.spec import load_whisper

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device == "cuda" else torch.float32
    models = {}
    for role in ("teacher", "student"):
        model, processor = load_whisper(getattr(args, role), device=device, dtype=dtype)
        models[role] = (model, processor)
    feature_extractor = models["teacher"][1].feature_extractor

    tmp = tempfile.TemporaryDirectory()
    cuts = []
    for manifest in args.cuts:
        cuts += sorted(read_cuts(manifest), key=lambda c: c.id)[:args.limit]
    if not args.cuts:
        cuts = sorted(mini_test_cuts(Path(tmp.name), args.per_test_set), key=lambda c: c.id)

    wall = {"teacher": 0.0, "student": 0.0}
    tokens = {"teacher": 0, "student": 0}
    per_lang = defaultdict(lambda: {"teacher": 0.0, "student": 0.0, "cuts": 0, "audio_s": 0.0})
    audio_s, n_cuts, skipped = 0.0, 0, 0
    warmed = False
    for lang, batch in batches_by_language(cuts, args.batch_size):
        audio = []
        for cut in batch:
            try:
                audio.append(load_cut_audio(cut))
            except BadAudioError:
                skipped += 1
        if not audio:
            continue
        features = feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
        features = features.to(device, dtype)
        if not warmed:  # first call pays one-off costs (allocations, kernel choice)
            for model, _ in models.values():
                decode(model, features[:1], lang, 4)
            warmed = True
        best = {}
        for _ in range(args.repeats):
            for role, (model, _) in models.items():
                if args.same_length:
                    seconds, out = decode(model, features, lang, args.same_length, args.same_length)
                else:
                    seconds, out = decode(model, features, lang, args.max_new_tokens)
                if role not in best or seconds < best[role][0]:
                    best[role] = (seconds, out)
        for role, (seconds, out) in best.items():
            wall[role] += seconds
            per_lang[lang][role] += seconds
            tokens[role] += int(out.numel())
        n_cuts += len(audio)
        seconds_of_audio = sum(len(a) for a in audio) / 16000
        audio_s += seconds_of_audio
        per_lang[lang]["cuts"] += len(audio)
        per_lang[lang]["audio_s"] += seconds_of_audio

    params = {role: sum(p.numel() for p in m.parameters()) / 1e6 for role, (m, _) in models.items()}
    layers = {role: f"{m.config.encoder_layers}-{m.config.decoder_layers}" for role, (m, _) in models.items()}
    result = {
        "teacher": args.teacher, "student": args.student, "device": device,
        "threads": torch.get_num_threads(), "batch_size": args.batch_size, "cuts": n_cuts,
        "same_length": args.same_length, "repeats": args.repeats,
        "skipped_bad_audio": skipped, "audio_s": round(audio_s, 1),
        "params_M": {k: round(v, 1) for k, v in params.items()}, "layers": layers,
        "wall_s": {k: round(v, 2) for k, v in wall.items()},
        "output_tokens": tokens,
        "speedup": round(wall["teacher"] / wall["student"], 2) if wall["student"] else None,
        "per_language": {lang: {"cuts": v["cuts"], "teacher_s": round(v["teacher"], 2),
                                "student_s": round(v["student"], 2),
                                "speedup": round(v["teacher"] / v["student"], 2) if v["student"] else None}
                         for lang, v in sorted(per_lang.items())},
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
