"""Export parity and long-form transcription against faster-whisper, in one run.

    . ./path.sh
    udistil prepare-mini-corpus --out-dir W/data/manifests --seed 1234 --num-train 150 --num-dev 1 --num-test 40
    for s in train test_clean test_noisy; do udistil prepare-cuts --recordings W/data/manifests/mini_recordings_$s.jsonl.gz \
        --supervisions W/data/manifests/mini_supervisions_$s.jsonl.gz --out W/data/cuts_$s.jsonl.gz; done
    nice -n 5 python benchmarks/export_transcribe.py --work-dir W
    # settings are chosen on a long file of dev clips (other sentences, voices and noise):
    udistil prepare-mini-corpus --out-dir W/dev --seed 1234 --num-train 3 --num-dev 120 --num-test 3
    udistil prepare-cuts --recordings W/dev/mini_recordings_dev.jsonl.gz \
        --supervisions W/dev/mini_supervisions_dev.jsonl.gz --out W/data/cuts_dev.jsonl.gz
    python benchmarks/export_transcribe.py --work-dir W --parts long --long-split dev

1. Parity.  The model is exported to CTranslate2 in float32 and int8.  Each mini test clip
   is transcribed by faster-whisper (greedy, language forced, no VAD, no timestamps, one
   temperature, no no-speech skipping) and by `udistil transcribe`'s CTranslate2 engine, and
   compared with `udistil decode --no-pack` after normalisation: the share of clips with the
   same text, and the WER of each against the references.  faster-whisper pads the log-mel
   features of a short clip with zeros, where Whisper (and transformers, and so `udistil
   decode`) pads the audio with silence before the log-mel; the CTranslate2 engine row
   isolates the export from that difference, and so does faster-whisper itself given each clip
   padded with silence to 30 s beforehand (the way to call it when parity matters).
   faster-whisper has no loop stop: a looping clip runs on to its token limit, where ours
   keeps one copy of the loop.  One more pair of rows gives both sides the same stopping
   rule (our decoder with its loop stop off; faster-whisper, audio padded, given our token
   budget as max_new_tokens), so that what differs there is the export, not the stops.
2. Long form.  English clips of the mini corpus are joined with 0.5-2 s gaps into a file of
   about five minutes.  `udistil transcribe` (torch engine, and the int8 export in the
   CTranslate2 engine), faster-whisper's BatchedInferencePipeline (int8 export, batch 8, its
   bundled Silero VAD; beam 5, its default, and beam 1), and the clips decoded one by one
   (CTranslate2 int8 and torch engines) are timed on it (model loading excluded) and scored against the joined
   references.  `udistil transcribe` runs with its engine's defaults (runner.TRANSCRIBE_DEFAULTS;
   pauses inside a segment shortened, as the pipeline's VAD drops them; windows above 12 s
   decoded in Whisper's timestamp mode; the second pass over the speech they missed), and
   with one of them changed in each further row (no second pass, --timestamps never, beam 1
   or 5, other window lengths, --keep-pauses); each row gives its WER, its deletions (the share of
   reference words dropped) and its number of output segments (one per timestamped
   sentence).  `--long-split dev` builds the file from WORK/data/cuts_dev.jsonl.gz instead
   (its own wav and result keys): settings are chosen there.

3. Speed again: `udistil transcribe` (CTranslate2 int8, its defaults) and
   BatchedInferencePipeline (int8; beam 5, its default, and beam 1) alternately,
   `--speed-repeats` times each, on the same file.
4. int8 against float32 (`--parts int8`): both exports in the CTranslate2 engine on
   `--int8-cuts` (default: the mini test sets), with a paired-bootstrap interval of the WER
   difference; the mini test sets' 80 clips are mostly Arabic and Swahili near 100 WER, so
   give it English clips (benchmarks/larger_test.sh draws 90) to see quantisation on speech
   the model can transcribe.

Every system runs with the same number of CPU threads.  Results go to WORK/results.json
as they come (a rerun skips the systems already there) and a table is printed at the end.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from udistil.transcribe.runner import engine_defaults
from udistil.transcribe.segments import SegmentOptions

SAMPLE_RATE = 16000
SEGMENT_DEFAULTS = SegmentOptions()


def errors(refs, hyps, langs):
    from udistil.evaluate.scoring import count_errors, normalise_pairs

    return count_errors(*normalise_pairs(refs, hyps, langs))


def wer(refs, hyps, langs):
    return errors(refs, hyps, langs).rate()


def normalised(text, lang):
    from udistil.evaluate.normalize import normalizer_for

    return normalizer_for(lang)(text or "")


class Results:
    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {}

    def run(self, key, fn):
        if key not in self.data:
            print(f"[bench] running {key}", file=sys.stderr, flush=True)
            self.data[key] = fn()
            self.path.write_text(json.dumps(self.data, indent=1, ensure_ascii=False) + "\n")
        print(f"[bench] {key}: {json.dumps({k: v for k, v in self.data[key].items() if k != 'hyps'})}",
              file=sys.stderr, flush=True)
        return self.data[key]


def load_clips(cuts_path):
    from udistil.data.audio import load_cut_audio
    from udistil.data.manifests import read_cuts, supervision

    clips = []
    for cut in read_cuts(cuts_path):
        sup = supervision(cut)
        clips.append({"id": cut.id, "lang": sup.language, "ref": sup.text, "audio": load_cut_audio(cut)})
    return clips


def export(model, out, quantization):
    from udistil.models.export import export_ctranslate2

    if not (out / "model.bin").exists():
        export_ctranslate2(model, out, quantization)
    return out


def udistil_decode(model, cuts_path, out_dir, threads):
    subprocess.run(["udistil", "decode", "--model", model, "--no-pack", "--num-threads", str(threads),
                    "--in", str(cuts_path), "--out", str(out_dir)], check=True)
    rows = [json.loads(line) for line in (out_dir / "hyps.jsonl").read_text().splitlines()]
    from udistil.data.manifests import custom, read_cuts

    stops = {c.id: custom(c).get("teacher_stop") for c in read_cuts(out_dir / "cuts.jsonl.gz")}
    wall = json.loads((out_dir / "wer.json").read_text())["wall_s"]
    return {"hyps": {r["id"]: r["hyp"] for r in rows}, "stops": stops, "wall_s": wall}


def faster_whisper_clips(ct2_dir, compute_type, clips, threads, pad_audio=False, budgeted=False):
    """faster-whisper on each clip; with pad_audio, the clip is first padded with silence to
    30 s, as Whisper pads it, so faster-whisper never pads the log-mel features itself.  With
    budgeted, each clip gets `udistil decode`'s token budget (the only one of its two stops that
    faster-whisper can be given), asked for as the export README says (faster-whisper
    generates half of prompt + max_new_tokens)."""
    from faster_whisper import WhisperModel

    from udistil.models.export import faster_whisper_max_new_tokens
    from udistil.teacher.transcriber import DecodeOptions

    model = WhisperModel(str(ct2_dir), device="cpu", compute_type=compute_type, cpu_threads=threads)
    hyps, t0 = {}, time.perf_counter()
    for clip in clips:
        audio = clip["audio"]
        budget = None
        if budgeted:
            budget = faster_whisper_max_new_tokens(DecodeOptions().token_budget(len(audio) / SAMPLE_RATE))
        if pad_audio:
            audio = np.pad(audio, (0, max(0, 30 * SAMPLE_RATE - len(audio))))
        segments, _ = model.transcribe(audio, language=clip["lang"], beam_size=1, temperature=0.0,
                                       vad_filter=False, without_timestamps=True,
                                       condition_on_previous_text=False, no_speech_threshold=None,
                                       max_new_tokens=budget)
        hyps[clip["id"]] = " ".join(s.text.strip() for s in segments).strip()
    return {"hyps": hyps, "wall_s": round(time.perf_counter() - t0, 2)}


def ct2_engine_clips(ct2_dir, clips, threads):
    """The export through `udistil transcribe`'s CTranslate2 engine: transformers' features
    (padding as in Whisper and `udistil decode`), greedy, the same token budgets."""
    from udistil.teacher.transcriber import DecodeOptions
    from udistil.transcribe.engines import CT2Engine

    engine = CT2Engine(ct2_dir, DecodeOptions(batch_size=8), device="cpu", threads=threads)
    texts, wall = timed(lambda: engine.transcribe([c["audio"] for c in clips], [c["lang"] for c in clips]))
    return {"hyps": {c["id"]: t for c, t in zip(clips, texts)}, "wall_s": wall}


def torch_engine_clips(model, clips, threads, detect_loops):
    """`udistil decode`'s decoder (the Transcriber, one clip per window, greedy, the same token
    budgets), with or without its loop stop."""
    texts, wall = engine_texts(model, [c["audio"] for c in clips], [c["lang"] for c in clips], threads,
                               detect_loops)
    return {"hyps": {c["id"]: t for c, t in zip(clips, texts)}, "wall_s": wall}


def build_long_file(clips, out_wav, seconds, seed):
    rng = np.random.default_rng(seed)
    english = [c for c in clips if c["lang"] == "en"]
    parts, refs, total, i = [], [], 0.0, 0
    while total < seconds:
        clip = english[i % len(english)]
        i += 1
        gap = np.zeros(int(rng.uniform(0.5, 2.0) * SAMPLE_RATE), np.float32)
        parts += [clip["audio"], gap]
        refs.append(clip["ref"])
        total += (len(clip["audio"]) + len(gap)) / SAMPLE_RATE
    audio = np.concatenate(parts)
    sf.write(str(out_wav), audio, SAMPLE_RATE)
    return {"seconds": round(len(audio) / SAMPLE_RATE, 2), "clips": i, "distinct_clips": min(i, len(english)),
            "ref": " ".join(refs)}


def timed(fn):
    t0 = time.perf_counter()
    text = fn()
    return text, round(time.perf_counter() - t0, 2)


def udistil_transcribe_long(model, wav, threads, compute_type="default", max_segment=None, drop_pauses=True,
                            timestamps="auto", redecode_missed=SEGMENT_DEFAULTS.redecode_missed, beam=None):
    """`udistil transcribe` on `wav`, with the engine's defaults (runner.TRANSCRIBE_DEFAULTS)
    where `max_segment` or `beam` is None."""
    from udistil.teacher.transcriber import DecodeOptions
    from udistil.transcribe.engines import open_engine
    from udistil.transcribe.runner import transcribe_paths

    settings = engine_defaults(model, beam, max_segment)
    engine = open_engine(model, DecodeOptions(batch_size=8, pack=True, timestamps=timestamps, beam=settings.beam),
                         device="cpu", compute_type=compute_type, threads=threads)
    out = []

    class Sink:
        def write(self, text):
            out.append(text)

        def flush(self):
            pass

    _, wall = timed(lambda: transcribe_paths([wav], engine, language="en", fmt="jsonl", stream=Sink(),
                                             segment_options=SegmentOptions(max_seconds=settings.max_segment,
                                                                             drop_pauses=drop_pauses,
                                                                             redecode_missed=redecode_missed),
                                             progress=False))
    row = json.loads(out[0])
    return {"hyp": row["text"], "wall_s": wall, "segments": len(row["segments"])}


def batched_pipeline_long(ct2_dir, wav, threads, beam):
    from faster_whisper import BatchedInferencePipeline, WhisperModel
    from faster_whisper.audio import decode_audio

    model = WhisperModel(str(ct2_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    pipeline = BatchedInferencePipeline(model)
    audio = decode_audio(str(wav), sampling_rate=SAMPLE_RATE)

    def go():
        segments, _ = pipeline.transcribe(audio, language="en", batch_size=8, beam_size=beam)
        return " ".join(s.text.strip() for s in segments)

    text, wall = timed(go)
    return {"hyp": text, "wall_s": wall}


def engine_texts(model, audios, languages, threads, detect_loops=True):
    """`udistil transcribe`'s engine for `model` (torch, or CTranslate2 for an export) on each
    audio alone, batched by 8: (texts, wall seconds)."""
    import torch

    from udistil.teacher.transcriber import DecodeOptions
    from udistil.transcribe.engines import open_engine

    torch.set_num_threads(threads)
    engine = open_engine(model, DecodeOptions(batch_size=8, pack=False, detect_loops=detect_loops),
                         device="cpu", threads=threads)
    return timed(lambda: engine.transcribe(audios, languages))


def clip_by_clip(model, pieces, threads):
    texts, wall = engine_texts(model, pieces, ["en"] * len(pieces), threads)
    return {"hyp": " ".join(texts), "wall_s": wall}


def speed_part(args, results, i8):
    """3. The speed comparison again, alternating `udistil transcribe` (its defaults) with the
    batched pipeline (its defaults, beam 5, and beam 1) on the same file (a shared machine's
    load drifts); median audio-s per wall-s of each, and each pair's ratio."""
    long_wav = args.work_dir / "long_en.wav"
    seconds = results.data["long_file"]["seconds"]
    ours = "udistil_transcribe_ct2_int8"

    def alternate():
        runs = {ours: [], "batched_pipeline_int8_beam5": [], "batched_pipeline_int8_beam1": []}
        for _ in range(args.speed_repeats):
            runs[ours].append(udistil_transcribe_long(str(i8), long_wav, args.threads)["wall_s"])
            for beam in (5, 1):
                runs[f"batched_pipeline_int8_beam{beam}"].append(
                    batched_pipeline_long(i8, long_wav, args.threads, beam)["wall_s"])
        return runs

    runs = results.run(f"speed_alternating_{args.speed_repeats}_beam5_beam1", alternate)
    speeds = {name: sorted(round(seconds / w, 2) for w in walls) for name, walls in runs.items()}
    ratios = {name: [round(b / a, 3) for a, b in zip(runs[ours], walls)] for name, walls in runs.items() if name != ours}
    return {"audio_s_per_s": speeds, "ours_speedup_per_pair": ratios,
            "median": {name: float(np.median(v)) for name, v in speeds.items()}}


def int8_part(args, results, f32, i8):
    """4. The int8 export against the float32 one, both in the CTranslate2 engine, on --int8-cuts:
    WER of each and a paired-bootstrap interval of the difference."""
    from paired_wer import clip_errors, paired_interval

    cuts = args.int8_cuts or args.work_dir / "data"
    clips = (load_clips(cuts) if cuts.is_file() else
             load_clips(cuts / "cuts_test_clean.jsonl.gz") + load_clips(cuts / "cuts_test_noisy.jsonl.gz"))
    tag = cuts.name.split(".")[0]
    hyps = {q: results.run(f"int8_part_{tag}_{q}", lambda d=d: ct2_engine_clips(d, clips, args.threads))["hyps"]
            for q, d in (("float32", f32), ("int8", i8))}
    counts = {q: np.array([clip_errors(c["ref"], h[c["id"]], c["lang"]) for c in clips]) for q, h in hyps.items()}
    errors = {q: per_clip[:, 0] for q, per_clip in counts.items()}
    words = counts["float32"][:, 1]
    rates = {q: round(100.0 * e.sum() / words.sum(), 2) for q, e in errors.items()}
    low, high = paired_interval(errors["int8"], errors["float32"], words, 5000, args.seed)
    return {"cuts": str(cuts), "clips": len(clips), "words": int(words.sum()), "wer": rates,
            "int8_minus_float32": round(rates["int8"] - rates["float32"], 2),
            "interval_95": [round(low, 2), round(high, 2)],
            "same_text_pct": round(100.0 * sum(hyps["int8"][c["id"]] == hyps["float32"][c["id"]] for c in clips)
                                   / len(clips), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", required=True, type=Path)
    parser.add_argument("--model", default="packaged:whisper-base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--long-seconds", type=float, default=300.0)
    parser.add_argument("--long-split", default=None,
                        help="build the long file from WORK/data/cuts_SPLIT.jsonl.gz (e.g. dev, to choose "
                             "settings) instead of the train and test clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="long,parity,speed", help="which parts, in this order")
    parser.add_argument("--long-systems", default=None,
                        help="comma-separated systems of the long part (default: all of them)")
    parser.add_argument("--speed-repeats", type=int, default=3, help="alternating runs in the speed part")
    parser.add_argument("--int8-cuts", type=Path, default=None,
                        help="the int8 part's cuts (default: the mini test sets), e.g. the 90 English clips "
                             "that benchmarks/larger_test.sh draws")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work = args.work_dir
    results = Results(work / "results.json")
    f32 = export(args.model, work / "ct2-float32", "float32")
    i8 = export(args.model, work / "ct2-int8", "int8")

    test_clips = []
    for part in ("test_clean", "test_noisy"):
        test_clips += load_clips(work / "data" / f"cuts_{part}.jsonl.gz")
    report = {}
    for part in args.parts.split(","):
        if part == "parity":
            report["parity"] = parity_part(args, results, test_clips, f32, i8)
        elif part == "long":
            report["long_form"] = long_part(args, results, test_clips, i8)
        elif part == "speed":
            report["speed_alternating"] = speed_part(args, results, i8)
        elif part == "int8":
            report["int8_against_float32"] = int8_part(args, results, f32, i8)
        else:
            raise SystemExit(f"--parts: unknown part {part!r} (long, parity, speed, int8)")
    (work / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=1, ensure_ascii=False))


def parity_part(args, results, test_clips, f32, i8):
    """1. parity on the mini test sets."""
    work = args.work_dir
    decodes = {}
    for part in ("test_clean", "test_noisy"):
        decodes[part] = results.run(f"udistil_decode_{part}", lambda p=part: udistil_decode(
            args.model, work / "data" / f"cuts_{p}.jsonl.gz", work / f"decode_{p}", args.threads))
    ours = {k: v for d in decodes.values() for k, v in d["hyps"].items()}
    stops = {k: v for d in decodes.values() for k, v in d["stops"].items()}
    engine = {q: results.run(f"ct2_engine_{q}", lambda d=d: ct2_engine_clips(d, test_clips, args.threads))
              for q, d in (("float32", f32), ("int8", i8))}
    fw = {q: results.run(f"faster_whisper_{q}", lambda q=q, d=d: faster_whisper_clips(d, q, test_clips, args.threads))
          for q, d in (("float32", f32), ("int8", i8))}
    fw_padded = results.run("faster_whisper_float32_audio_padded", lambda: faster_whisper_clips(
        f32, "float32", test_clips, args.threads, pad_audio=True))
    fw_padded_i8 = results.run("faster_whisper_int8_audio_padded", lambda: faster_whisper_clips(
        i8, "int8", test_clips, args.threads, pad_audio=True))
    # The two sides with the same stopping rule: no loop stop in ours (faster-whisper has none),
    # and our token budget given to faster-whisper as max_new_tokens.  What still differs is
    # the export or faster-whisper's decoding, not the stops.
    torch_loops_kept = results.run("torch_engine_no_loop_stop", lambda: torch_engine_clips(
        args.model, test_clips, args.threads, detect_loops=False))
    fw_budgeted = results.run("faster_whisper_float32_audio_padded_budgeted", lambda: faster_whisper_clips(
        f32, "float32", test_clips, args.threads, pad_audio=True, budgeted=True))
    ids = [c["id"] for c in test_clips]
    langs = [c["lang"] for c in test_clips]
    refs = [c["ref"] for c in test_clips]
    same_stops = [normalised(torch_loops_kept["hyps"][i], lang) == normalised(fw_budgeted["hyps"][i], lang)
                  for i, lang in zip(ids, langs)]
    same = [normalised(ours[i], lang) == normalised(fw["float32"]["hyps"][i], lang) for i, lang in zip(ids, langs)]
    ended = [i for i in range(len(ids)) if stops.get(ids[i]) == "eot"]
    parity = {
        "clips": len(ids),
        "same_text_pct": round(100 * sum(same) / len(same), 1),
        "same_text_pct_where_udistil_stopped_at_eot": round(100 * sum(same[i] for i in ended) / max(1, len(ended)), 1),
        "clips_stopped_by_budget_or_loop": len(ids) - len(ended),
        "audio_padded_same_text_pct": round(100 * sum(
            normalised(ours[i], lang) == normalised(fw_padded["hyps"][i], lang)
            for i, lang in zip(ids, langs)) / len(ids), 1),
        "audio_padded_same_text_pct_where_udistil_stopped_at_eot": round(100 * sum(
            normalised(ours[ids[k]], langs[k]) == normalised(fw_padded["hyps"][ids[k]], langs[k])
            for k in ended) / max(1, len(ended)), 1),
        "same_stopping_rule_same_text_pct": round(100 * sum(same_stops) / len(ids), 1),
        "same_stopping_rule_differing": [
            {"id": ids[k], "udistil_no_loop_stop": torch_loops_kept["hyps"][ids[k]],
             "fw_float32_budgeted": fw_budgeted["hyps"][ids[k]]} for k in range(len(ids)) if not same_stops[k]][:12],
        "wer_fw_float32_audio_padded": round(wer(refs, [fw_padded["hyps"][i] for i in ids], langs), 2),
        "wer_fw_int8_audio_padded": round(wer(refs, [fw_padded_i8["hyps"][i] for i in ids], langs), 2),
        "ct2_engine_same_text_pct": round(100 * sum(
            normalised(ours[i], lang) == normalised(engine["float32"]["hyps"][i], lang)
            for i, lang in zip(ids, langs)) / len(ids), 1),
        "ct2_engine_same_text_pct_where_udistil_stopped_at_eot": round(100 * sum(
            normalised(ours[ids[k]], langs[k]) == normalised(engine["float32"]["hyps"][ids[k]], langs[k])
            for k in ended) / max(1, len(ended)), 1),
        "wer_ct2_engine_float32": round(wer(refs, [engine["float32"]["hyps"][i] for i in ids], langs), 2),
        "wer_ct2_engine_int8": round(wer(refs, [engine["int8"]["hyps"][i] for i in ids], langs), 2),
        "wer_udistil_decode": round(wer(refs, [ours[i] for i in ids], langs), 2),
        "wer_fw_float32": round(wer(refs, [fw["float32"]["hyps"][i] for i in ids], langs), 2),
        "wer_fw_int8": round(wer(refs, [fw["int8"]["hyps"][i] for i in ids], langs), 2),
        "per_language": {},
    }
    for lang in sorted(set(langs)):
        sel = [k for k, lg in enumerate(langs) if lg == lang]
        parity["per_language"][lang] = {
            "clips": len(sel), "same_text_pct": round(100 * sum(same[k] for k in sel) / len(sel), 1),
            **{f"wer_{name}": round(wer([refs[k] for k in sel], [h[ids[k]] for k in sel], [lang] * len(sel)), 2)
               for name, h in (("udistil", ours), ("fw_float32", fw["float32"]["hyps"]),
                               ("fw_int8", fw["int8"]["hyps"]))}}
    parity["differing"] = [{"id": ids[k], "udistil": ours[ids[k]], "fw_float32": fw["float32"]["hyps"][ids[k]],
                            "stop": stops.get(ids[k])} for k in range(len(ids)) if not same[k]][:12]
    return parity


def long_part(args, results, test_clips, i8):
    """2. long form, on a file built from the train and test clips, or from --long-split's."""
    work = args.work_dir
    if args.long_split:  # a file of other clips: its own wav and result keys
        clips = load_clips(work / "data" / f"cuts_{args.long_split}.jsonl.gz")
        tag = f"{args.long_split}_"
    else:
        clips, tag = load_clips(work / "data" / "cuts_train.jsonl.gz") + test_clips, ""
    long_wav = work / f"long_{tag}en.wav"
    long = results.run(f"{tag}long_file", lambda: build_long_file(clips, long_wav, args.long_seconds, args.seed))
    # The same joined clips, one by one (rebuilt from the file's layout is not needed: same order).
    english = [c for c in clips if c["lang"] == "en"]
    pieces = [english[i % len(english)]["audio"] for i in range(long["clips"])]
    # Most informative first: the machine is shared and a run may be cut short.
    systems = {
        "udistil_transcribe_ct2_int8": lambda: udistil_transcribe_long(str(i8), long_wav, args.threads),
        "udistil_transcribe_ct2_int8_no_second_pass": lambda: udistil_transcribe_long(
            str(i8), long_wav, args.threads, redecode_missed=0.0),
        "udistil_transcribe_ct2_int8_no_timestamps": lambda: udistil_transcribe_long(
            str(i8), long_wav, args.threads, timestamps="never"),
        "batched_pipeline_int8_beam5": lambda: batched_pipeline_long(i8, long_wav, args.threads, 5),
        "clip_by_clip_ct2_int8": lambda: clip_by_clip(str(i8), pieces, args.threads),
        "batched_pipeline_int8_beam1": lambda: batched_pipeline_long(i8, long_wav, args.threads, 1),
        "udistil_transcribe_ct2_int8_keep_pauses": lambda: udistil_transcribe_long(str(i8), long_wav, args.threads,
                                                                                   drop_pauses=False),
        "udistil_transcribe_ct2_int8_beam1": lambda: udistil_transcribe_long(str(i8), long_wav, args.threads, beam=1),
        "udistil_transcribe_ct2_int8_beam5": lambda: udistil_transcribe_long(str(i8), long_wav, args.threads, beam=5),
        "udistil_transcribe_ct2_int8_segment20_beam1": lambda: udistil_transcribe_long(
            str(i8), long_wav, args.threads, max_segment=20.0, beam=1),
        "udistil_transcribe_ct2_int8_segment25": lambda: udistil_transcribe_long(str(i8), long_wav, args.threads,
                                                                                 max_segment=25.0),
        "udistil_transcribe_ct2_int8_segment20": lambda: udistil_transcribe_long(str(i8), long_wav, args.threads,
                                                                                 max_segment=20.0),
        "udistil_transcribe_ct2_int8_segment10": lambda: udistil_transcribe_long(str(i8), long_wav, args.threads,
                                                                                 max_segment=10.0),
        "udistil_transcribe_ct2_int8_segment8": lambda: udistil_transcribe_long(str(i8), long_wav, args.threads,
                                                                                max_segment=8.0),
        "udistil_transcribe_torch": lambda: udistil_transcribe_long(args.model, long_wav, args.threads),
        "clip_by_clip_torch": lambda: clip_by_clip(args.model, pieces, args.threads),
    }
    if args.long_systems:
        systems = {name: systems[name] for name in args.long_systems.split(",")}
    table = {}
    for name, fn in systems.items():
        r = results.run(f"{tag}long_{name}", fn)
        counts = errors([long["ref"]], [r["hyp"]], ["en"])
        table[name] = {"audio_s_per_s": round(long["seconds"] / r["wall_s"], 2),
                       "wer": round(counts.rate(), 2), "deletions": counts.deletions,
                       "deleted_pct": round(100 * counts.deletions / counts.ref_units, 2), "wall_s": r["wall_s"],
                       **({"segments": r["segments"]} if "segments" in r else {})}
    return {"file_s": long["seconds"], "clips": long["clips"], **table}


if __name__ == "__main__":
    main()
