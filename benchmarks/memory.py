#!/usr/bin/env python3
"""Peak resident memory of stages 3, 4 and 5 on a synthetic manifest of N cuts (default 100K).

    python benchmarks/memory.py --cuts 100000 --work /tmp/udistil_memory   # the figure
    python benchmarks/memory.py --cuts 20000                              # quicker

What is real and what is faked (say so when quoting the figures):
  * the manifest: N cuts over 8 espeak-ng clips (ids and recordings distinct, audio shared),
    each with a stage-3-like pseudo-label (20 tokens, log-probs, entropies) for stage 4/5;
  * stage 3, "model faked": the real `pseudo_label()` code path (streaming read, audio
    loading and checks, partial file, fingerprint, lock, final in-order write) on all N
    cuts, with a transcriber that returns a fixed 20-token transcript instead of running
    a model;
  * stage 3, "tiny model": the same on the first --model-cuts cuts with the tiny random
    Whisper, to show what a model adds (its weights and one batch, not the corpus);
  * stage 4: `udistil score confidence,entropy,nll,hallucination` (statistics filters, the
    streaming runner) and `udistil score fusion` (a whole-set filter: it holds every cut);
  * stage 5: `udistil select --filters`, every subset in one process (two streaming passes
    per subset).
Each step runs in its own process; its peak RSS is that process's ru_maxrss (os.wait4).
The parent imports nothing heavy (Linux counts a child's pre-exec RSS, i.e. the parent's,
in its ru_maxrss), so the manifests are made in a child too.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_manifest(work: Path, n: int) -> tuple[Path, Path]:
    """(unlabelled stage-2-like manifest, labelled stage-3-like manifest), both N cuts."""
    import numpy as np
    import soundfile as sf
    from lhotse import Recording, SupervisionSegment

    from udistil.data.manifests import custom, write_cuts
    from udistil.tts.espeak import synthesize

    wav_dir = work / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    recs = []
    for i, text in enumerate(["one two three", "the river is near", "good morning", "a red bridge",
                              "open the window", "yellow garden", "the teacher reads", "market day"]):
        path = wav_dir / f"w{i}.wav"
        sf.write(str(path), np.concatenate([np.zeros(4000, np.float32), synthesize(text, "en")]), 16000)
        recs.append(Recording.from_file(str(path), recording_id=f"w{i}"))
    rng = np.random.default_rng(0)

    def cuts(labelled: bool):
        for i in range(n):
            rec = recs[i % len(recs)]
            rec_i = Recording(id=f"r{i:07d}", sources=rec.sources, sampling_rate=rec.sampling_rate,
                              num_samples=rec.num_samples, duration=rec.duration)
            cut = rec_i.to_cut()
            cut.id = f"cut{i:07d}"
            cut.supervisions = [SupervisionSegment(cut.id, rec_i.id, 0, rec.duration, text="", language="en")]
            if labelled:
                lp = np.round(-rng.random(20), 5).tolist()
                custom(cut).update(teacher_text="synthetic pseudo label number %d" % i,
                                   teacher_tokens=rng.integers(0, 50000, 20).tolist(),
                                   teacher_logprobs=lp, teacher_entropy=np.round(rng.random(20), 5).tolist(),
                                   teacher_language="en", teacher_stop="eot", teacher_packed=False,
                                   proxy_wer=float(rng.random() * 100))
            yield cut
    plain, labelled = work / "cuts.jsonl.gz", work / "labelled.jsonl.gz"
    if not plain.exists():
        write_cuts(cuts(False), plain)
    if not labelled.exists():
        write_cuts(cuts(True), labelled)
    return plain, labelled


class FixedTranscriber:
    """Stands in for the teacher: a fixed 20-token transcript per clip (no model runs)."""

    name = "fixed-transcript (model faked)"

    def __init__(self):
        from udistil.teacher.transcriber import DecodeOptions

        self.options = DecodeOptions()
        self.stats = {}

    def supports(self, language):
        return True

    def transcribe(self, clips, languages):
        from udistil.teacher.transcriber import Transcript

        return [Transcript("a fixed transcript", list(range(20)), [-0.1] * 20, [0.2] * 20, lang or "en", "eot")
                for lang in languages]


def child_stage3(args) -> None:
    from udistil.teacher.pseudo_label import pseudo_label

    if args.model:
        from udistil.teacher.transcriber import Transcriber

        transcriber = Transcriber.from_spec(args.model)
    else:
        transcriber = FixedTranscriber()
    pseudo_label(args.in_path, args.out, transcriber)


def child_prepare(args, work: Path) -> None:
    import itertools

    from udistil.data.manifests import iter_cuts, write_cuts
    from udistil.models.tiny import build_tiny_whisper

    work.mkdir(parents=True, exist_ok=True)
    plain, _ = make_manifest(work, args.cuts)
    write_cuts(itertools.islice(iter_cuts(plain), args.model_cuts), work / "subset.jsonl.gz")
    if not (work / "tiny_whisper" / "config.json").exists():
        build_tiny_whisper(work / "tiny_whisper", seed=0)


def peak_rss(cmd: list[str], log: Path) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit code) of one command run as a child."""
    t0 = time.time()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1"))
        _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024, time.time() - t0, os.waitstatus_to_exitcode(status)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cuts", type=int, default=100_000)
    p.add_argument("--model-cuts", type=int, default=256, help="cuts labelled by the tiny random Whisper")
    p.add_argument("--work", default="/tmp/udistil_memory")
    p.add_argument("--limit-mib", type=float, default=1024)
    p.add_argument("--child", choices=["stage3", "prepare"], help=argparse.SUPPRESS)
    p.add_argument("--in", dest="in_path", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args()
    work = Path(args.work) / f"n{args.cuts}"
    if args.child == "stage3":
        return child_stage3(args)
    if args.child == "prepare":
        return child_prepare(args, work)

    import shutil

    work.mkdir(parents=True, exist_ok=True)
    for f in work.glob("out_*"):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    me = [sys.executable, str(Path(__file__).resolve())]
    t0 = time.time()
    subprocess.run(me + ["--child", "prepare", "--cuts", str(args.cuts), "--model-cuts", str(args.model_cuts),
                         "--work", args.work], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    plain, labelled, subset, tiny = (work / "cuts.jsonl.gz", work / "labelled.jsonl.gz",
                                     work / "subset.jsonl.gz", work / "tiny_whisper")
    print(f"manifests: {args.cuts} cuts ({plain.stat().st_size / 2**20:.1f} MiB unlabelled, "
          f"{labelled.stat().st_size / 2**20:.1f} MiB labelled, gz) in {time.time() - t0:.0f} s", flush=True)
    udistil = [sys.executable, "-m", "udistil.bin.main"]
    steps = [
        ("stage 3, model faked, all cuts", me + ["--child", "stage3", "--in", str(plain),
                                                "--out", str(work / "out_s3.jsonl.gz")]),
        (f"stage 3, tiny random Whisper, {args.model_cuts} cuts",
         me + ["--child", "stage3", "--in", str(subset), "--out", str(work / "out_s3_tiny.jsonl.gz"),
               "--model", str(tiny)]),
        ("stage 4, statistics filters (streamed)",
         udistil + ["score", "confidence,entropy,nll,hallucination", "--in", str(labelled),
                    "--out", str(work / "out_s4.jsonl.gz")]),
        ("stage 4, fusion (whole set)",
         udistil + ["score", "fusion", "--in", str(work / "out_s4.jsonl.gz"),
                    "--out", str(work / "out_s4_fusion.jsonl.gz")]),
        ("stage 5, every subset (one process)",
         udistil + ["select", "--filters", "none confidence entropy nll hallucination fusion",
                    "--in", str(work / "out_s4_fusion.jsonl.gz"), "--out-dir", str(work / "out_s5")]),
    ]
    results = []
    for name, cmd in steps:
        rss, wall, rc = peak_rss(cmd, work / f"log_{len(results)}.txt")
        results.append({"step": name, "peak_rss_mib": round(rss, 1), "wall_s": round(wall, 1), "exit": rc})
        print(f"{name:45s} peak RSS {rss:8.1f} MiB  wall {wall:7.1f} s  exit {rc}", flush=True)
    (work / "memory.json").write_text(json.dumps({"cuts": args.cuts, "steps": results}, indent=2))
    over = [r for r in results if r["peak_rss_mib"] > args.limit_mib or r["exit"] != 0]
    print(f"{'FAIL' if over else 'OK'}: limit {args.limit_mib:.0f} MiB; results in {work / 'memory.json'}")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
