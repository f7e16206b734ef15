#!/usr/bin/env python3
"""The long fault-injection run: many kill -9s at seeded random moments in stages 3, 4 and 7.

    python benchmarks/faults.py --kills 5 --seeds 1 2 3 --work /tmp/udistil_faults

For each stage and seed: an uninterrupted run (the reference), then the same command killed
--kills times at seeded random moments (tests/faults/killing.py says what a moment is) and
finished; the resumed output must equal the reference (manifests for stages 3 and 4, the
hypotheses and scores for stage 7) and hold every cut.  Prints one line per stage and seed
and a total: kills landed mid-run, runs that matched, cuts lost.  tests/faults/test_kills.py
is the one-kill-per-stage version that CI runs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "faults"))

from killing import command, decode_rows, kill_and_resume, manifest_rows, run_in_process  # noqa: E402

SENTENCES = [("good morning everyone", "en"), ("habari za asubuhi", "sw"), ("صباح الخير", "ar"),
             ("the train leaves at noon", "en"), ("karibu nyumbani", "sw"), ("the sun is hot today", "en"),
             ("open the window please", "en"), ("asante sana rafiki", "sw")]


def make_corpus(work: Path) -> Path:
    import numpy as np
    import soundfile as sf
    from lhotse import Recording, SupervisionSegment

    from udistil.data.manifests import write_cuts
    from udistil.tts.espeak import synthesize

    cuts = []
    for i, (text, lang) in enumerate(SENTENCES):
        path = work / f"u{i}.wav"
        sf.write(str(path), np.concatenate([np.zeros(4000, np.float32), synthesize(text, lang)]), 16000)
        cut = Recording.from_file(str(path), recording_id=f"u{i}").to_cut()
        cut.id = f"u{i}"
        cut.supervisions = [SupervisionSegment(cut.id, cut.id, 0, cut.duration, text=text, language=lang)]
        cuts.append(cut)
    return write_cuts(cuts, work / "cuts.jsonl.gz")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=5, help="kills per stage and seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--stages", nargs="+", default=["3", "4", "7"])
    p.add_argument("--work", default="/tmp/udistil_faults")
    args = p.parse_args()
    from udistil.models.tiny import build_tiny_whisper

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tiny = build_tiny_whisper(work / "tiny_whisper", seed=0)
    corpus = make_corpus(work)
    n = len(SENTENCES)
    labelled = work / "labelled.jsonl.gz"
    run_in_process("pseudo-label", "--model", tiny, "--in", corpus, "--out", labelled)
    totals = {"kills": 0, "landed": 0, "runs": 0, "matched": 0, "cuts_lost": 0}
    report = []
    for stage in args.stages:
        for seed in args.seeds:
            d = work / f"stage{stage}_seed{seed}"
            d.mkdir()
            t0 = time.time()
            if stage == "3":
                out = d / "labels.jsonl.gz"
                where = kill_and_resume(command("pseudo-label", "--model", tiny, "--in", corpus, "--out", out),
                                        out.with_name(out.name + ".partial.jsonl"), n, args.kills, seed)
                got, ref = manifest_rows(out), manifest_rows(labelled)
            elif stage == "4":
                ref_path, out = d / "ref.jsonl.gz", d / "scored.jsonl.gz"
                base = ("score", "pesq", "--batch-size", "1", "--in", labelled)
                run_in_process(*base, "--out", ref_path)
                where = kill_and_resume(command(*base, "--out", out), out.with_name(out.name + ".partial.jsonl"),
                                        n, args.kills, seed)
                got, ref = manifest_rows(out), manifest_rows(ref_path)
            else:
                base = ("decode", "--model", tiny, "--in", corpus)
                run_in_process(*base, "--out", d / "ref")
                out = d / "killed"
                where = kill_and_resume(command(*base, "--out", out), out / "cuts.jsonl.gz.partial.jsonl",
                                        n, args.kills, seed)
                got, ref = decode_rows(out), decode_rows(d / "ref")
            landed = sum(w.startswith("after") for w in where)
            ids = [r["id"] for r in (got[0] if stage == "7" else got)]
            lost = n - len(ids)
            totals["kills"] += len(where)
            totals["landed"] += landed
            totals["runs"] += 1
            totals["matched"] += got == ref
            totals["cuts_lost"] += lost
            line = {"stage": stage, "seed": seed, "kills": where, "identical": got == ref, "cuts_lost": lost,
                    "wall_s": round(time.time() - t0, 1)}
            report.append(line)
            print(json.dumps(line, ensure_ascii=False), flush=True)
    print(json.dumps({"total": totals}), flush=True)
    (work / "faults.json").write_text(json.dumps({"runs": report, "total": totals}, indent=2))
    sys.exit(0 if totals["matched"] == totals["runs"] and totals["cuts_lost"] == 0 else 1)


if __name__ == "__main__":
    main()
