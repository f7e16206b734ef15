#!/usr/bin/env python3
"""Data at scale: run stages 2-6 of run.sh on a synthetic corpus of N cuts and measure what grows.

The corpus costs no synthesis: N cuts whose recordings point to a few hundred short audio
files (tones in noise, 1-4 s) written once.  The teacher is a tiny random Whisper
(udistil.models.tiny), so the model's own cost is small and what this measures is the
pipeline around it: reading audio and manifests, features, storage, sampling.  Stages 2-6 run
through run.sh and the local job runner with --nj shards; stage 4 scores one statistics-only
filter; stage 6 trains one 2-1 student for --distill-steps steps from the stored targets and
the encoder cache.

Reported (JSON on stdout and in WORK/scale.json):
  * wall seconds per stage, and per cut;
  * stage 3's model time (encoder + decoder passes, from its shards' stats) and the rest per cut;
  * peak RSS of the largest process of each `udistil` action (VmHWM, polled);
  * files under exp/ (and per shard of stage 3), bytes on disk under exp/ per hour of audio,
    split into the targets store, the encoder cache, checkpoints and the rest;
  * bytes per token of the stored targets.

    python benchmarks/scale.py --num-cuts 10000 --work /tmp/scale_10k   # ~ minutes on 2 cores
    nice -n 10 python benchmarks/scale.py --num-cuts 100000 --work /tmp/scale_100k > log 2>&1 &

--kill-stages 3 6 then repeats those stages in WORK/killed (a copy of the reference's stage-2
cuts and prepared teacher): each stage's run.sh is killed with SIGKILL, its whole process
group at once (as a node that dies), at a seeded random moment between 15 % and 85 % of the
reference's wall time for that stage (--kill-window), and run again to the end.  The resumed outputs must
equal the uninterrupted ones: stage 3's manifests cut by cut (texts, tokens, statistics and
the stored targets' bytes, by the CRC in each storage key, plus a sample loaded in full),
stage 6's best/ weights tensor by tensor.  With WORK/scale.json already there for the same
--num-cuts, the reference is not run again (a long reference and its kill runs can be two
invocations).
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


def write_audio_pool(directory: Path, count: int, seed: int) -> list[tuple[Path, float]]:
    import soundfile as sf

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(count):
        seconds = float(rng.uniform(1.0, 4.0))
        t = np.arange(int(seconds * RATE)) / RATE
        tone = 0.2 * np.sin(2 * np.pi * rng.uniform(120, 400) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        samples = (tone + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
        path = directory / f"a{i:04d}.wav"
        sf.write(str(path), samples, RATE)
        pool.append((path.resolve(), len(samples) / RATE))
    return pool


def write_manifests(out_dir: Path, part: str, num_cuts: int, pool, prefix: str = "scale") -> float:
    """lhotse recordings + supervisions for `num_cuts` cuts over the pool; returns audio seconds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0.0
    with gzip.open(out_dir / f"{prefix}_recordings_{part}.jsonl.gz", "wt") as recs, \
            gzip.open(out_dir / f"{prefix}_supervisions_{part}.jsonl.gz", "wt") as sups:
        for i in range(num_cuts):
            path, seconds = pool[i % len(pool)]
            rid = f"{part}-{i:07d}"
            samples = int(round(seconds * RATE))
            recs.write(json.dumps({"id": rid, "sources": [{"type": "file", "channels": [0], "source": str(path)}],
                                   "sampling_rate": RATE, "num_samples": samples, "duration": samples / RATE,
                                   "channel_ids": [0]}) + "\n")
            sups.write(json.dumps({"id": rid, "recording_id": rid, "start": 0.0, "duration": samples / RATE,
                                   "channel": 0, "text": "", "language": "en"}) + "\n")
            total += samples / RATE
    return total


class PeakRss(threading.Thread):
    """Polls every descendant of this process: the highest VmHWM seen per `udistil` action."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval, self.stop, self.peak = interval, threading.Event(), Counter()

    def run(self):
        me = os.getpid()
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                words = [w.decode(errors="replace") for w in cmd if w]
                action = next((words[i + 1] for i, w in enumerate(words[:-1])
                               if w.endswith("udistil") or w == "udistil.bin.main"), None)
                if action is None or not _descends_from(int(pid), me):
                    continue
                hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
                if hwm:
                    self.peak[action] = max(self.peak[action], int(hwm.group(1)) * 1024)
            self.stop.wait(self.interval)


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(50):
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return False
    return False


def disk_usage(root: Path) -> dict:
    sizes, files = Counter(), 0
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        files += 1
        rel = path.relative_to(root).as_posix()
        kind = ("targets" if "/targets/" in rel else "encoder_cache" if rel.startswith("encoder_cache/")
                else "checkpoints" if "/checkpoints/" in rel else "other")
        sizes[kind] += path.stat().st_size
    return {"files": files, "bytes": dict(sizes)}


def record_clip_context(model_dir: Path) -> None:
    """Give the saved tiny teacher a clip-sized audio context (every decoding path reads it)."""
    from transformers import WhisperConfig

    from udistil.models.audio_context import AudioContext, record

    config = WhisperConfig.from_pretrained(model_dir)
    record(config, AudioContext(rule="clip"))
    config.save_pretrained(model_dir)


STUDENT = "student_2-1_none"


def run_stages(cmd: list[str], work: Path, env: dict, first: int, last: int, log,
               kill_after_s: float | None = None, kill_once=None) -> int | None:
    """run.sh --stage first --stop-stage last in `work`; with kill_after_s, SIGKILL its whole
    process group at that moment, counted from when `kill_once()` first holds (from the start
    without it).  Returns the exit code, or None when the kill landed."""
    proc = subprocess.Popen(cmd + ["--stage", str(first), "--stop-stage", str(last)], cwd=work, env=env,
                            stdout=log, stderr=log, start_new_session=True)
    if kill_after_s is None:
        return proc.wait()
    while kill_once is not None and proc.poll() is None and not kill_once():
        time.sleep(0.2)
    try:
        return proc.wait(timeout=kill_after_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def comparable_cut(line: bytes) -> tuple[dict, dict]:
    """A labelled cut without where its arrays live (offsets and paths differ after a resume),
    and its arrays' byte count, dtype, CRC32 and shape (which must not)."""
    cut = json.loads(line)
    arrays = {}
    for key, value in list(cut.get("custom", {}).items()):
        if isinstance(value, dict) and "storage_key" in value:
            arrays[key] = value["storage_key"].split(":", 1)[1]
            del cut["custom"][key]
    return cut, arrays


def compare_manifests(reference: Path, resumed: Path, sample: int, rng: random.Random) -> dict:
    """Cut by cut: equal cuts (arrays by their CRC), and `sample` cuts' arrays loaded and compared."""
    from lhotse import CutSet

    import udistil.data.array_chunks  # noqa: F401  (registers the chunked storage type)

    cuts = differing = missing = 0
    first_difference = None
    with gzip.open(reference, "rb") as ref, gzip.open(resumed, "rb") as res:
        for ref_line, res_line in itertools.zip_longest(ref, res):
            if ref_line is None or res_line is None:
                missing += 1
                continue
            cuts += 1
            if comparable_cut(ref_line) != comparable_cut(res_line):
                differing += 1
                first_difference = first_difference or json.loads(ref_line)["id"]
    picked = set(rng.sample(range(cuts), min(sample, cuts)))
    loaded_equal = 0
    ref_cuts, res_cuts = iter(CutSet.from_jsonl_lazy(reference)), iter(CutSet.from_jsonl_lazy(resumed))
    for i, (a, b) in enumerate(zip(ref_cuts, res_cuts)):
        if i in picked:
            loaded_equal += all(np.array_equal(a.load_custom(k), b.load_custom(k))
                                for k in ("kd_topk_ids", "kd_topk_logprobs") if a.has_custom(k))
    return {"cuts": cuts, "differing": differing, "unmatched": missing, "first_difference": first_difference,
            "sample_loaded": len(picked), "sample_equal": loaded_equal}


def compare_weights(reference: Path, resumed: Path) -> dict:
    from safetensors.numpy import load_file

    a, b = load_file(str(reference / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    unequal = sorted(k for k in a if k not in b or not np.array_equal(a[k], b[k]))
    return {"tensors": len(a), "unequal": len(unequal) + len(set(b) - set(a)), "first_unequal": unequal[:3]}


def progress_at_kill(killed: Path, stage: int) -> dict:
    """What the killed stage had written: stage 3's labelled cuts (finished shards' and partial
    files' lines), stage 6's encoder-cache entries and checkpoints."""
    def lines(paths) -> int:
        return sum(sum(1 for _ in (gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb"))) for p in paths)

    exp = killed / "exp"
    if stage == 3:
        shards = exp / "teacher" / "train" / "shards"
        return {"labelled_train_cuts": lines(shards.glob("cuts.*.jsonl.gz")) + lines(shards.glob("*.partial.jsonl"))}
    return {"encoder_cache_entries": lines(exp.glob("encoder_cache/*/*.index.jsonl")),
            "checkpoints": sorted(p.name for p in exp.glob(f"{STUDENT}/checkpoints/step-*"))}


def kill_runs(work: Path, cmd: list[str], env: dict, reference: dict, stages: list[int], seed: int,
              window: tuple[float, float] = (0.15, 0.85), in_training: bool = False) -> dict:
    """Stages 3 and/or 6 again in WORK/killed, each SIGKILLed once at a seeded random moment and
    rerun; their outputs against the reference's."""
    rng = random.Random(seed)
    seconds = {int(k): v for k, v in reference["stage_seconds"].items()}
    killed = work / "killed"
    if killed.exists():
        shutil.rmtree(killed)
    (killed / "exp").mkdir(parents=True)
    shutil.copytree(work / "data", killed / "data", symlinks=True)
    shutil.copytree(work / "exp" / "models", killed / "exp" / "models", symlinks=True)
    if 3 not in stages:  # the reference's labels (their targets stay where the reference wrote them)
        shutil.copytree(work / "exp" / "teacher", killed / "exp" / "teacher", symlinks=True)
    results = {}
    with open(killed / "run.log", "w") as log:
        for stage in (3, 4, 5, 6) if 3 in stages else (4, 5, 6):
            if stage not in stages:
                if stage > 3 and 6 in stages:  # stage 6 reads stages 4-5's outputs of this directory
                    if run_stages(cmd, killed, env, stage, stage, log) != 0:
                        raise RuntimeError(f"stage {stage} failed in {killed}; see {killed / 'run.log'}")
                continue
            if stage == 6 and in_training:
                # A moment inside training: within the 5 % of the reference's stage time that
                # follow the student's first checkpoint (training's steps are the last minute
                # or so of the stage, after the encoder-cache jobs and the manifest passes).
                def started_training():
                    return any((killed / "exp" / STUDENT / "checkpoints").glob("step-*"))
                moment, condition = rng.uniform(0.0, 0.05) * seconds[stage], started_training
            else:
                moment, condition = rng.uniform(*window) * seconds[stage], None
            t0 = time.time()
            rc = run_stages(cmd, killed, env, stage, stage, log, kill_after_s=moment, kill_once=condition)
            if rc not in (None, 0):
                raise RuntimeError(f"stage {stage} failed before its kill; see {killed / 'run.log'}")
            t1 = time.time()
            written = progress_at_kill(killed, stage) if rc is None else None
            if run_stages(cmd, killed, env, stage, stage, log) != 0:
                raise RuntimeError(f"stage {stage} failed after its kill; see {killed / 'run.log'}")
            entry = {"killed_after_s": round(moment, 1) if rc is None else None,
                     "kill_landed": rc is None, "written_at_kill": written, "rerun_s": round(time.time() - t1, 1),
                     "until_kill_s": round(t1 - t0, 1)}
            if stage == 3:
                entry["compare"] = {part: compare_manifests(work / "exp" / "teacher" / f"cuts_{part}.jsonl.gz",
                                                            killed / "exp" / "teacher" / f"cuts_{part}.jsonl.gz",
                                                            sample=200, rng=rng)
                                    for part in ("train", "dev")}
                entry["equal"] = all(c["differing"] == 0 and c["unmatched"] == 0
                                     and c["sample_equal"] == c["sample_loaded"] for c in entry["compare"].values())
            else:
                entry["compare"] = compare_weights(work / "exp" / STUDENT / "best", killed / "exp" / STUDENT / "best")
                entry["equal"] = entry["compare"]["unequal"] == 0
            results[str(stage)] = entry
            print(f"stage {stage}: {entry}", file=sys.stderr, flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-cuts", type=int, required=True)
    parser.add_argument("--work", required=True, help="working directory (made fresh: data/, exp/)")
    parser.add_argument("--nj", type=int, default=8)
    parser.add_argument("--audio-files", type=int, default=300)
    parser.add_argument("--dev-cuts", type=int, default=200)
    parser.add_argument("--distill-steps", type=int, default=200)
    parser.add_argument("--stop-stage", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-context", choices=("clip", "full"), default="clip",
                        help="the tiny teacher's audio context: clip (encoder positions sliced to the "
                             "clip, as a clip-context student decodes; ~4x cheaper per cut, so 100K "
                             "cuts fit in hours) or full (Whisper's 30 s window, as a real teacher)")
    parser.add_argument("--labels-from", default=None, metavar="REF_WORK",
                        help="skip stage 3: its outputs are the labelled cuts of the reference run in "
                             "REF_WORK, repeated to --num-cuts with new ids (each copy keeps its audio "
                             "and stored targets); for the largest N, whose stage 3 alone would take "
                             "hours here.  Stage 2 runs, and split-cuts and merge-cuts on N cuts")
    parser.add_argument("--kill-stages", type=int, nargs="*", default=[], choices=(3, 6),
                        help="after the reference, run these stages again in WORK/killed, each killed "
                             "once at a random moment and rerun, and compare their outputs")
    parser.add_argument("--kill-window", type=float, nargs=2, default=(0.15, 0.85), metavar=("FROM", "TO"),
                        help="the kill moment is drawn between these shares of the reference's stage time "
                             "(stage 6's encoder-cache jobs take its first half or so, training the rest)")
    parser.add_argument("--kill-in-training", action="store_true",
                        help="stage 6's kill lands after the student's first checkpoint (a resume from "
                             "it), not at a moment of the whole stage")
    args = parser.parse_args(argv)

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done_before = work / "scale.json"
    if args.kill_stages and done_before.is_file() and json.loads(done_before.read_text())["num_cuts"] == args.num_cuts:
        result = json.loads(done_before.read_text())
        print(f"reusing the reference run in {work}", file=sys.stderr)
    else:
        result = reference_run(args, work, env)
        if result is None:
            return 1
    if args.kill_stages:
        # This checkout's run.sh, with the reference's options.
        cmd = [str(REPO / "run.sh")] + (result.get("command_args") or result["command"].split(" "))[1:]
        result["kills"] = kill_runs(work, cmd, env, result, args.kill_stages, args.seed, tuple(args.kill_window),
                                    args.kill_in_training)
        (work / "scale.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result["kills"], indent=1))
        return 0 if all(k["equal"] for k in result["kills"].values()) else 1
    return 0


def replicate_labels(ref: Path, work: Path, num_cuts: int, nj: int, env: dict, log) -> None:
    """exp/teacher/cuts_{train,dev}.jsonl.gz from the reference's: train repeated to num_cuts
    cuts (copy k of cut i is cut k * n + i under a new id, recording and supervision renamed
    with it), written as nj shards and merged by `udistil merge-cuts`; dev copied.  Stage 2's
    train cuts go through `udistil split-cuts` as stage 3 would split them."""
    teacher = work / "exp" / "teacher"
    shards = teacher / "train" / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    shutil.copy(ref / "exp" / "teacher" / "cuts_dev.jsonl.gz", teacher / "cuts_dev.jsonl.gz")
    with gzip.open(ref / "exp" / "teacher" / "cuts_train.jsonl.gz", "rt") as fh:
        lines = fh.readlines()
    per_shard = -(-num_cuts // nj)
    for j in range(nj):
        with gzip.open(shards / f"cuts.{j + 1}.jsonl.gz", "wt") as out:
            for k in range(j * per_shard, min(num_cuts, (j + 1) * per_shard)):
                cut = json.loads(lines[k % len(lines)])
                new_id = f"train-{k:07d}"
                cut["id"] = cut["supervisions"][0]["id"] = cut["supervisions"][0]["recording_id"] = new_id
                cut["recording"]["id"] = new_id
                out.write(json.dumps(cut) + "\n")
    del lines
    udistil = [str(REPO / "tools" / "venv" / "bin" / "udistil")]
    subprocess.run(udistil + ["split-cuts", "--in", "data/cuts_train.jsonl.gz", "--nj", str(nj),
                              "--out-dir", "exp/split_check"], cwd=work, env=env, stdout=log, stderr=log, check=True)
    subprocess.run(udistil + ["merge-cuts", "--out", str(teacher / "cuts_train.jsonl.gz")]
                   + [str(shards / f"cuts.{j + 1}.jsonl.gz") for j in range(nj)],
                   cwd=work, env=env, stdout=log, stderr=log, check=True)


def reference_run(args, work: Path, env: dict) -> dict | None:
    """Build the corpus and run run.sh's stages 2..--stop-stage on it; the measurements."""
    from udistil.models.tiny import build_tiny_whisper

    pool = write_audio_pool(work / "audio", args.audio_files, args.seed)
    audio_s = write_manifests(work / "data" / "manifests", "train", args.num_cuts, pool)
    write_manifests(work / "data" / "manifests", "dev", args.dev_cuts, pool[::-1])
    if args.labels_from:  # the reference's teacher, as it named it: its stored targets carry its identity
        teacher = Path(args.labels_from).resolve() / "tiny_teacher"
    else:
        teacher = build_tiny_whisper(work / "tiny_teacher", seed=args.seed)
        if args.teacher_context == "clip":
            record_clip_context(teacher)
    cmd = [str(REPO / "run.sh"), "--skip-install", "true", "--teacher", str(teacher), "--corpus-prep", "none",
           "--manifest-prefix", "scale", "--test-sets", "", "--nj", str(args.nj), "--filters", "confidence",
           "--students", "2-1", "--train-filters", "none", "--distill-steps", str(args.distill_steps),
           "--distill-valid-every", str(args.distill_steps), "--distill-dev-cuts", "16", "--decode-init", "false",
           "--alpha-mse", "0"]
    rss = PeakRss()
    rss.start()
    t0 = time.time()
    log = open(work / "run.log", "w")
    subprocess.run(cmd + ["--stage", "0", "--stop-stage", "0"], cwd=work, env=env, stdout=log, stderr=log, check=True)
    before = disk_usage(work / "exp") if (work / "exp").is_dir() else {"files": 0, "bytes": {}}
    if args.labels_from:
        # Stage 3 is not run: its outputs are copies of the reference's labelled cuts, merged by
        # merge-cuts as stage 3 merges its shards; stage 2 runs, and split-cuts on its output.
        done = subprocess.run(cmd + ["--stage", "2", "--stop-stage", "2"], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=log, text=True)
        if done.returncode == 0:
            replicate_labels(Path(args.labels_from), work, args.num_cuts, args.nj, env, log)
            later = subprocess.run(cmd + ["--stage", "4", "--stop-stage", str(args.stop_stage)], cwd=work, env=env,
                                   stdout=subprocess.PIPE, stderr=log, text=True)
            done = subprocess.CompletedProcess(later.args, later.returncode, done.stdout + later.stdout)
    else:
        done = subprocess.run(cmd + ["--stage", "2", "--stop-stage", str(args.stop_stage)], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=log, text=True)
    wall = time.time() - t0
    rss.stop.set()
    rss.join()
    log.write(done.stdout)
    log.close()
    if done.returncode != 0:
        print(done.stdout[-3000:], file=sys.stderr)
        print(f"run.sh failed ({done.returncode}); see {work / 'run.log'}", file=sys.stderr)
        return None
    stages = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"stage (\d):\s+(\d+)", done.stdout)}
    stats = [json.loads(p.read_text()) for p in (work / "exp" / "teacher" / "train" / "shards").glob("*.stats.json")
             if not args.labels_from]
    model_s = sum(s["decoder"].get("encode_s", 0) + s["decoder"].get("decode_s", 0) for s in stats)
    shard_wall = sum(s["wall_s"] for s in stats)
    labelled = sum(s["labelled"] for s in stats)
    after = disk_usage(work / "exp")
    tokens = 0
    with gzip.open(work / "exp" / "teacher" / "cuts_train.jsonl.gz", "rt") as fh:
        for line in fh:
            tokens += json.loads(line)["custom"]["kd_targets"]["rows"]
    target_bytes = sum(p.stat().st_size for p in (work / "exp" / "teacher" / "train" / "targets").glob("*.chunks"))
    hours = audio_s / 3600
    result = {
        "num_cuts": args.num_cuts, "nj": args.nj, "teacher_context": args.teacher_context,
        "labels_from": args.labels_from,
        "audio_hours": round(hours, 3), "wall_s": round(wall, 1),
        "stage_seconds": stages,
        "stage_ms_per_cut": {s: round(1000 * v / args.num_cuts, 2) for s, v in stages.items()},
        "stage3": {"shard_wall_s": round(shard_wall, 1), "model_s": round(model_s, 1),
                   "non_model_ms_per_cut": round(1000 * (shard_wall - model_s) / max(labelled, 1), 2),
                   "model_ms_per_cut": round(1000 * model_s / max(labelled, 1), 2),
                   "non_model_share_of_model": round((shard_wall - model_s) / model_s, 3) if model_s else None},
        "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in sorted(rss.peak.items())},
        "files_under_exp": after["files"], "files_before_stage2": before["files"],
        "bytes": after["bytes"],
        "bytes_per_audio_hour": {k: round(v / hours) for k, v in after["bytes"].items()},
        "target_tokens": tokens, "target_bytes_per_token": round(target_bytes / max(tokens, 1), 1),
        "command": " ".join(cmd), "command_args": cmd,
    }
    (work / "scale.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.exit(main())
