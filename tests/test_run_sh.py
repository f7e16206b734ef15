"""The generic run.sh end to end on a tiny mini corpus with a tiny random teacher.

Checks the stage plumbing (options, sharding through the job runner, skip-if-done, the final
table), not accuracy: the real whisper-base is exercised by ./run.sh itself and by the
model tests.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from udistil.data.manifests import read_cuts

# The recipe run's local runner may run three jobs at once on three cores (cmd.sh's
# max_local_jobs / local_cores), so stage 6's three students and stage 7's decodes can overlap.
RECIPE_CORES = 3


def runner_logs(paths):
    """[(log, threads, gpus or None, start, end)] from the headers run_local.py writes."""
    jobs = []
    for path in paths:
        text = Path(path).read_text()
        threads = int(re.search(r"^# Runner: threads=(\d+) start=([\d.]+)", text, re.M).group(1))
        start = float(re.search(r"^# Runner: threads=\d+ start=([\d.]+)", text, re.M).group(1))
        end = float(re.search(r"^# Runner: end=([\d.]+)", text, re.M).group(1))
        gpus = re.search(r"^# CUDA_VISIBLE_DEVICES=(.*)$", text, re.M)
        jobs.append((str(path), threads, gpus.group(1) if gpus else None, start, end))
    return jobs


def peak_threads(jobs):
    """The most threads running at one moment (a job ending frees its threads first)."""
    events = sorted([(s, 1, t) for _, t, _, s, _ in jobs] + [(e, 0, -t) for _, t, _, _, e in jobs])
    running = peak = 0
    for _, _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, repo_root, tiny_whisper_dir):
    work = tmp_path_factory.mktemp("recipe")
    cmd = [str(repo_root / "run.sh"), "--skip-install", "true", "--teacher", str(tiny_whisper_dir),
           "--mini-train-size", "9", "--mini-dev-size", "3", "--mini-test-size", "3", "--nj", "2",
           # The tiny teacher has 2+2 layers; two steps prove the stage, not the student.
           "--students", "1-1", "--distill-steps", "2"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", max_local_jobs=str(RECIPE_CORES), local_cores=str(RECIPE_CORES))
    first = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env, timeout=1800)
    return work, cmd, env, first


def test_pipeline_runs_and_prints_the_teacher_table(recipe_run):
    work, _, _, first = recipe_run
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "| teacher/decode_test_clean |" in first.stdout
    assert "wall time per stage" in first.stdout
    labelled = read_cuts(work / "exp/teacher/cuts_train.jsonl.gz")
    assert len(labelled) == 9
    assert all("teacher_logprobs" in c.supervisions[0].custom for c in labelled)
    # Stage 3 keeps the teacher's distillation targets; stage 6 trains from them alone.
    assert all(c.custom["kd_targets"]["rows"] >= 1 for c in labelled)
    summary = json.loads((work / "exp/student_1-1_none/training_summary.json").read_text())
    assert summary["teacher"] == "stored" and summary["audio_context"]["rule"] == "clip"
    for part in ("test_clean", "test_noisy"):
        summary = json.loads((work / f"exp/teacher/decode_{part}/wer.json").read_text())
        assert summary["n"] == 3
    for job in (1, 2):
        assert "# Ended (code 0)" in (work / f"exp/teacher/train/log/pseudo_label.{job}.log").read_text()
    scored = read_cuts(work / "exp/scores/cuts_train.jsonl.gz")
    assert all("fusion" in c.supervisions[0].custom for c in scored)
    assert (work / "data/select/none/cuts.jsonl.gz").exists()
    results = (work / "RESULTS.md").read_text()
    assert "| teacher |" in results and "| student_1-1_none |" in results
    assert "| init_student_1-1 |" in results  # the untrained initialisation, for comparison
    # Stage 8 reports the filters on dev and, as the mini train pool has references, on the pool.
    assert (work / "exp/report_pool/filter_quality.md").exists()
    dev, pool = results.split("## Filter quality (dev set)", 1)[1].split("## Filter quality (training pool)", 1)
    assert "cuts_dev.jsonl.gz" in dev and "cuts_train.jsonl.gz" in pool
    assert (work / "exp/student_1-1_none/decode_test_clean/wer.json").exists()


def test_rerun_skips_finished_stages(recipe_run):
    work, cmd, env, first = recipe_run
    assert first.returncode == 0
    stamp = (work / "exp/teacher/cuts_train.jsonl.gz").stat().st_mtime_ns
    again = subprocess.run(cmd + ["--stage", "1", "--stop-stage", "7"], cwd=work, capture_output=True,
                           text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "exists, skipping" in again.stdout
    assert (work / "exp/teacher/cuts_train.jsonl.gz").stat().st_mtime_ns == stamp


def test_a_corpus_drawn_otherwise_stops_stage_1_until_redone(recipe_run):
    work, cmd, env, first = recipe_run
    assert first.returncode == 0
    marker = work / "data/manifests/.done"
    recorded = json.loads(marker.read_text())
    manifests = {p.name: p.read_bytes() for p in (work / "data/manifests").glob("*.jsonl.gz")}
    # As if the corpus had been drawn from other sentence lists or language shares.
    marker.write_text(json.dumps(dict(recorded, options=dict(recorded["options"], plan="0" * 16))))
    stopped = subprocess.run(cmd + ["--stage", "1", "--stop-stage", "1"], cwd=work, capture_output=True,
                             text=True, env=env, timeout=600)
    assert stopped.returncode != 0
    assert "data/manifests/.done" in stopped.stderr and "plan '0000000000000000' -> " in stopped.stderr
    redone = subprocess.run(cmd + ["--stage", "1", "--stop-stage", "2", "--redo-stale", "true"], cwd=work,
                            capture_output=True, text=True, env=env, timeout=600)
    assert redone.returncode == 0, redone.stderr[-2000:]
    assert json.loads(marker.read_text()) == recorded
    # The same draw gives the same bytes, so stage 2 keeps the cuts made from them.
    assert {p.name: p.read_bytes() for p in (work / "data/manifests").glob("*.jsonl.gz")} == manifests
    assert "exists, skipping" in redone.stdout


def test_bad_option_fails_fast(repo_root, tmp_path):
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", "--stgae", "3"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0 and "unknown option --stgae" in out.stderr


# --- GPUs and clusters: the command lines stages 6 and 7 would submit (no GPU, no Slurm) ------

def _dry_run(repo_root, work, *options, env=None):
    """run.sh with cmd_backend=slurm in dry-run: utils/slurm.py writes each job script and
    prints the sbatch command instead of submitting.  Returns run.sh's stdout."""
    env = dict(env or os.environ, HF_HUB_OFFLINE="1", cmd_backend="slurm", slurm_dry_run="true",
               slurm_conf=str(repo_root / "conf" / "slurm.conf"))
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", *options], cwd=work,
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def _job_scripts(work, name):
    """The per-job scripts run.sh's submit_each wrote for NAME (one per job, in job order)."""
    scripts = list(work.glob(f"exp/jobs/{name}.*/{name}.*.sh"))
    return sorted(scripts, key=lambda p: int(p.name.split(".")[-2]))


def _script_command(script):
    """The command one job runs, as a word list (its script's `exec` line)."""
    import shlex

    line = next(l for l in script.read_text().splitlines() if l.startswith("exec "))
    return shlex.split(line[len("exec "):])


def _sbatch_lines(stdout):
    return [l.split() for l in stdout.splitlines() if l.startswith("sbatch ")]


def _job_name(sbatch):
    return next(a.split("=", 1)[1] for a in sbatch if a.startswith("--job-name="))


def _stage6(repo_root, work, *options):
    """Stage 6 for one student on data/select/none (inputs faked: nothing is run)."""
    (work / "exp/init_student_1-1").mkdir(parents=True)
    (work / "exp/init_student_1-1/config.json").write_text("{}")
    (work / "data/select/none").mkdir(parents=True)
    (work / "data/select/none/cuts.jsonl.gz").write_bytes(b"x")
    stdout = _dry_run(repo_root, work, "--stage", "6", "--stop-stage", "6", "--students", "1-1",
                      "--train-filters", "none", *options)
    # The distillation job (stage 6's encoder-cache jobs come before it).
    sbatch = [l for l in _sbatch_lines(stdout) if any("distill" in w for w in l)]
    assert len(sbatch) == 1, stdout
    scripts = _job_scripts(work, "distill")
    assert len(scripts) == 1
    return sbatch[0], _script_command(scripts[0])


def test_stage6_asks_for_a_gpu_unless_the_device_is_cpu(repo_root, tmp_path):
    sbatch, command = _stage6(repo_root, tmp_path)
    assert "--gres=gpu:1" in sbatch and "--nodes" not in sbatch  # conf/jobs.conf: train --gpu 1
    assert command[:2] == ["udistil", "distill"] and command[command.index("--device") + 1] == "auto"
    cpu = tmp_path / "cpu"
    cpu.mkdir()
    sbatch, command = _stage6(repo_root, cpu, "--device", "cpu")
    assert not any(a.startswith(("--gres", "--nodes")) for a in sbatch)
    assert command[:2] == ["udistil", "distill"] and command[command.index("--device") + 1] == "cpu"


def test_stage6_passes_the_encoder_split_to_the_cache_jobs_and_the_students(repo_root, tmp_path):
    _, command = _stage6(repo_root, tmp_path, "--train-encoder-layers", "1", "--spec-augment", "true",
                         "--weight-by", "fusion")
    assert command[command.index("--train-encoder-layers") + 1] == "1"
    assert "--spec-augment" in command and command[command.index("--weight-by") + 1] == "fusion"
    # The cache jobs must store what these students read: the frozen bottom's states.
    cache_jobs = [p.read_text() for p in tmp_path.glob("exp/encoder_cache/log/q/*.sh")]
    assert cache_jobs and all("--train-encoder-layers 1" in text for text in cache_jobs), cache_jobs
    plain = tmp_path / "plain"
    plain.mkdir()
    _, command = _stage6(repo_root, plain)
    assert not {"--train-encoder-layers", "--spec-augment", "--weight-by"} & set(command)


def test_stage6_with_two_gpus_asks_slurm_for_them_and_starts_torchrun(repo_root, tmp_path):
    sbatch, command = _stage6(repo_root, tmp_path, "--distill-gpus", "2")
    assert "--gres=gpu:2" in sbatch and "--nodes" not in sbatch
    assert command[0] == "torchrun" and command[command.index("--nproc_per_node") + 1] == "2"
    assert command[command.index("udistil"):][:2] == ["udistil", "distill"]
    # The job script, run here as Slurm would run it, really starts two ranks (a stand-in
    # `udistil` prints what torchrun gave it; the real one would train).
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "udistil").write_text('#!/bin/sh\necho "rank $RANK of $WORLD_SIZE local $LOCAL_RANK: $1"\n')
    (fake / "udistil").chmod(0o755)
    env = dict(os.environ, SLURM_ARRAY_TASK_ID="1",
               PATH=f"{fake}:{repo_root / 'tools/venv/bin'}:{os.environ['PATH']}")
    [qscript] = tmp_path.glob("exp/jobs/distill.*/log/q/distill.sh")
    subprocess.run(["bash", str(qscript)], cwd=tmp_path, env=env, check=True, timeout=120)
    log = (tmp_path / "exp/student_1-1_none/log/distill.log").read_text()
    assert "rank 0 of 2 local 0: distill" in log and "rank 1 of 2 local 1: distill" in log, log
    assert "# Ended (code 0)" in log


def test_stage6_on_two_nodes_starts_torchrun_on_each(repo_root, tmp_path):
    sbatch, command = _stage6(repo_root, tmp_path, "--distill-gpus", "4", "--distill-nodes", "2")
    assert "--gres=gpu:4" in sbatch
    assert sbatch[sbatch.index("--nodes") + 1] == "2" and "--ntasks-per-node" in sbatch
    assert command[0] == "torchrun_slurm.sh"
    assert command[command.index("--nnodes") + 1] == "2" and command[command.index("--nproc-per-node") + 1] == "4"
    assert command[command.index("--") + 1:][:2] == ["udistil", "distill"]


def test_stage7_passes_the_device_to_every_decode_job(repo_root, tmp_path):
    stdout = _dry_run(repo_root, tmp_path, "--stage", "7", "--stop-stage", "7", "--device", "cuda",
                      "--dtype", "float16", "--decode-gpus", "1")
    # One array: the teacher on two test sets, submitted together.
    [sbatch] = _sbatch_lines(stdout)
    assert "--gres=gpu:1" in sbatch and sbatch[sbatch.index("--job-name=decode") + 0]
    assert [a for a in sbatch if a.startswith("--array=")] == ["--array=1,2"]
    for script, part in zip(_job_scripts(tmp_path, "decode"), ("test_clean", "test_noisy")):
        command = _script_command(script)
        assert command[:2] == ["udistil", "decode"] and command[command.index("--out") + 1].endswith(part)
        assert command[command.index("--device") + 1] == "cuda" and command[command.index("--dtype") + 1] == "float16"


def test_cluster_options_are_checked(repo_root, tmp_path):
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", "--distill-gpus", "two"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0 and "--distill-gpus must be a whole number" in out.stderr


def _jobs_conf(repo_root):
    """kind -> {option: value} from conf/jobs.conf (what each kind of job asks for)."""
    kinds = {}
    for line in (repo_root / "conf/jobs.conf").read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            kinds[words[0]] = {words[i][2:].replace("-", "_"): words[i + 1] for i in range(1, len(words) - 1, 2)}
    return kinds


def test_slurm_dry_run_asks_every_model_stage_for_a_gpu_and_the_conf_resources(repo_root, recipe_run, tmp_path):
    """Stages 3-7 of the finished recipe run, submitted again (dry run, logs removed so no job
    counts as finished) with --device cuda: each model job asks for one GPU and the CPUs,
    memory and time conf/jobs.conf gives its kind; the light steps ask for no GPU."""
    import sys

    sys.path.insert(0, str(repo_root / "utils"))
    import slurm

    work, cmd, env, first = recipe_run
    assert first.returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(work, copy, symlinks=True)
    for log in list(copy.glob("exp/**/log")) + [copy / "exp/jobs"]:
        shutil.rmtree(log, ignore_errors=True)
    for summary in copy.glob("exp/student_*/training_summary.json"):
        summary.unlink()
    stdout = _dry_run(repo_root, copy, *cmd[1:], "--stage", "3", "--stop-stage", "7", "--device", "cuda",
                      "--label-beam", "3")
    # --label-beam reaches stage 3's labelling jobs only; the test decodes keep --beam (1).
    labelling = [q.read_text() for q in copy.glob("exp/teacher/*/log/q/pseudo_label.sh")]
    assert labelling and all(re.search(r"--beam '?3'?\s", text) for text in labelling), labelling
    decodes = [_script_command(s) for s in _job_scripts(copy, "decode")]
    assert decodes and {c[c.index("--beam") + 1] for c in decodes} == {"1"}
    conf, kinds = slurm.SlurmConfig.parse(repo_root / "conf/slurm.conf"), _jobs_conf(repo_root)
    kind_of = {"pseudo_label": "label", "distill": "train", "decode": "decode"}
    seen = set()
    for sbatch in _sbatch_lines(stdout):
        name = _job_name(sbatch)
        kind = "score" if name.startswith("score_") and name != "score_fusion" else kind_of.get(name, "misc")
        if any(a.startswith("--output=exp/encoder_cache/") for a in sbatch):
            kind = "decode"  # stage 6's pre-step runs the students' frozen encoder once per cut
        expected = conf.sbatch_args(dict(kinds[kind], **({"gpu": "1"} if kind != "misc" else {})))
        assert " ".join(expected) in " ".join(sbatch), (name, expected, sbatch)
        assert ("--gres=gpu:1" in sbatch) == (kind != "misc"), sbatch
        assert "--requeue" in sbatch and any(a.startswith("--signal=") for a in sbatch)
        seen.add(kind)
    assert {"label", "train", "decode", "misc"} <= seen, stdout
    # Threads are the job's allocation, not the submitting host's: never on the command line.
    for script in copy.glob("exp/**/q/*.sh"):
        assert "--num-threads" not in script.read_text()


def test_every_model_job_gets_its_own_gpu_on_a_fake_four_gpu_machine(repo_root, tiny_whisper_dir, speak, tmp_path):
    """Stage 3 with --nj 8 and no GPU option on a machine that shows four GPUs (a stub
    nvidia-smi, CUDA_VISIBLE_DEVICES=0,1,2,3; the jobs then run on the CPU, as torch finds no
    driver): every job gets exactly one GPU, and no GPU runs two jobs at once."""
    from lhotse import MonoCut, Recording, SupervisionSegment

    from udistil.data.manifests import write_cuts

    work = tmp_path / "work"
    # Stage 3's inputs as stages 0-2 leave them: the teacher and 8 train and 8 dev cuts.
    shutil.copytree(tiny_whisper_dir, work / "exp/models/teacher")
    for part in ("train", "dev"):
        cuts = []
        for i in range(8):
            wav = work / "wav" / f"{part}{i}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            speak(f"number {i} of the {part} set", voice="en", path=wav)
            rec = Recording.from_file(wav, recording_id=f"{part}{i}")
            sup = SupervisionSegment(id=rec.id, recording_id=rec.id, start=0, duration=rec.duration, language="en")
            cuts.append(MonoCut(id=rec.id, start=0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup]))
        write_cuts(cuts, work / f"data/cuts_{part}.jsonl.gz")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "nvidia-smi").write_text("#!/bin/sh\nfor i in 0 1 2 3; do echo \"GPU $i: Fake GPU (UUID: GPU-$i)\"; done\n")
    (stub / "nvidia-smi").chmod(0o755)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=f"{stub}:{os.environ['PATH']}",
               CUDA_VISIBLE_DEVICES="0,1,2,3", max_local_jobs="8", local_cores="8")
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", "--nj", "8", "--stage", "3",
                          "--stop-stage", "3"], cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    jobs = runner_logs(sorted(work.glob("exp/teacher/*/log/pseudo_label.*.log")))
    assert len(jobs) == 16
    assert all(gpus in {"0", "1", "2", "3"} for _, _, gpus, _, _ in jobs), [j[2] for j in jobs]
    assert {gpus for _, _, gpus, _, _ in jobs} == {"0", "1", "2", "3"}
    for gpu in "0123":
        spans = sorted((start, end) for _, _, gpus, start, end in jobs if gpus == gpu)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), (gpu, spans)
    # Four at once (one per GPU), sharing the eight cores the runner was given.
    assert all(threads == 2 for _, threads, _, _, _ in jobs) and peak_threads(jobs) <= 8


def test_students_and_decodes_start_together_within_the_runner_cores(recipe_run):
    """With three jobs allowed on three cores, stage 6's students (one per selected set that
    kept a cut: oracle_wer keeps none of the random teacher's labels) run at once, so do
    stage 7's decodes, and the threads of the running jobs never add up to more than three."""
    work, _, _, first = recipe_run
    assert first.returncode == 0
    students = runner_logs(sorted(work.glob("exp/student_*/log/distill.log")))
    assert len(students) >= 2
    assert max(s for *_, s, _ in students) < min(e for *_, e in students), students  # all overlap
    decodes = runner_logs(sorted(work.glob("exp/*/log/decode_*.log")))
    assert len(decodes) >= 6
    first_three = sorted(decodes, key=lambda j: j[3])[:3]
    assert max(s for *_, s, _ in first_three) < min(e for *_, e in first_three)
    for jobs in (students, decodes):
        assert peak_threads(jobs) <= RECIPE_CORES
        assert all(gpus is None for _, _, gpus, _, _ in jobs)  # no GPU here: nothing set


def test_killed_stage2_redoes_only_unfinished_shards(repo_root, recipe_run, tmp_path):
    """As if stage 2 had been killed after shard 1 of the train set: the rerun keeps shard 1
    (not read again) and makes shard 2, and the merged cuts are the same as before."""
    work, cmd, env, first = recipe_run
    assert first.returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(work, copy, symlinks=True)
    merged = (copy / "data/cuts_train.jsonl.gz").read_bytes()
    shard1, shard2 = (copy / f"data/cuts_train.shards/cuts.{j}.jsonl.gz" for j in (1, 2))
    stamp = shard1.stat().st_mtime_ns
    for path in (copy / "data/cuts_train.jsonl.gz", copy / "data/.cuts_train.done", shard2):
        path.unlink()
    again = subprocess.run(cmd + ["--stage", "2", "--stop-stage", "2"], cwd=copy, capture_output=True,
                           text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert shard1.stat().st_mtime_ns == stamp and shard2.exists()
    assert "already made from these manifests; kept" in (copy / "data/log/prepare_cuts_train.1.log").read_text()
    assert (copy / "data/cuts_train.jsonl.gz").read_bytes() == merged


def test_stage1_is_a_prepare_job_and_is_not_marked_done_without_manifests(repo_root, tmp_path):
    """Stage 1 synthesises or reads all the audio: under Slurm it is a job of the prepare kind
    (never run on the login node).  In a dry run the job writes nothing, so the stage stops
    and leaves no done-marker behind."""
    import sys

    sys.path.insert(0, str(repo_root / "utils"))
    import slurm

    env = dict(os.environ, HF_HUB_OFFLINE="1", cmd_backend="slurm", slurm_dry_run="true",
               slurm_conf=str(repo_root / "conf" / "slurm.conf"))
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", "--stage", "1", "--stop-stage", "1"],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode != 0
    (sbatch,) = _sbatch_lines(out.stdout)
    expected = slurm.SlurmConfig.parse(repo_root / "conf/slurm.conf").sbatch_args(_jobs_conf(repo_root)["prepare"])
    assert " ".join(expected) in " ".join(sbatch) and "--gres=gpu:1" not in sbatch
    (script,) = tmp_path.glob("data/**/q/*.sh")
    assert "prepare-mini-corpus" in script.read_text()
    assert "not marked done" in out.stderr and not (tmp_path / "data/manifests/.done").exists()


# --- rounds of self-training (--rounds, --next-teacher) --------------------------------------

def _file_states(paths):
    """{path: (mtime, sha1)} of each file (a link by its target: student best/ exports)."""
    import hashlib

    return {str(p): (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest()) for p in paths if p.is_file()}


def _round1_outputs(work):
    """What round 1's stages 3-7 leave: labels, scores, selections, students and decodes."""
    patterns = ["exp/teacher/cuts_*.jsonl.gz", "exp/scores/cuts_*.jsonl.gz", "exp/scores/fusion_calibration.json",
                "data/select/*/cuts.jsonl.gz", "exp/student_*/best/*", "exp/student_*/training_summary.json",
                "exp/*/decode_*/hyps.jsonl", "exp/*/decode_*/wer.json"]
    return _file_states(sorted(p for pattern in patterns for p in work.glob(pattern)))


def test_a_second_round_is_labelled_by_round_1s_student_under_exp_round2(repo_root, recipe_run, tmp_path):
    """--rounds 2 from stage 3 on the finished run: round 1 is kept as it was (its stages find
    their work done), and round 2 relabels the pool and dev with round 1's fusion student (the
    default --next-teacher), scores, selects, trains and decodes under exp/round2 alone, and
    RESULTS.md lists its students."""
    from udistil.models.identity import model_identity

    work, cmd, env, first = recipe_run
    assert first.returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(work, copy, symlinks=True)
    round1 = _round1_outputs(copy)
    assert any("student_1-1_fusion/best" in p for p in round1) and any("data/select" in p for p in round1)
    out = subprocess.run(cmd + ["--rounds", "2", "--stage", "3"], cwd=copy, capture_output=True, text=True,
                         env=env, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert _round1_outputs(copy) == round1

    labeller = "exp/student_1-1_fusion/best"
    for job in (1, 2):
        log = (copy / f"exp/round2/teacher/train/log/pseudo_label.{job}.log").read_text()
        assert f"--model {labeller} " in log.splitlines()[0] and "# Ended (code 0)" in log
    # The labels and their stored targets are the student's, not the teacher's.
    student_id, teacher_id = model_identity(copy / labeller), model_identity(copy / "exp/models/teacher")
    assert student_id != teacher_id
    for part in ("train", "dev"):
        cuts = read_cuts(copy / f"exp/round2/teacher/cuts_{part}.jsonl.gz")
        assert {c.custom["kd_targets"]["teacher_id"] for c in cuts} == {student_id}
    assert {c.custom["kd_targets"]["teacher_id"] for c in read_cuts(copy / "exp/teacher/cuts_train.jsonl.gz")} \
        == {teacher_id}
    # Fusion is calibrated again on round 2's dev labels; round 2 selects into its own folder.
    assert (copy / "exp/round2/scores/dev/log/fit_fusion.log").exists()
    assert (copy / "exp/round2/scores/cuts_train.jsonl.gz").exists()
    assert (copy / "exp/round2/select/none/cuts.jsonl.gz").exists()
    assert not (copy / "exp/round2/teacher/decode_test_clean").exists()  # the teacher is decoded once
    students = sorted(p.parent.name for p in copy.glob("exp/round2/student_*/training_summary.json"))
    assert students, out.stdout[-3000:]
    results = (copy / "RESULTS.md").read_text()
    for name in students:
        config = json.loads((copy / "exp/round2" / name / "config.json").read_text())
        # Initialised as in round 1, from the teacher's layers; trained on the student's targets.
        assert config["student"] == "exp/init_student_1-1" and config["labeller"] == labeller
        assert config["teacher"] == "exp/models/teacher"
        assert (copy / "exp/round2" / name / "decode_test_clean/wer.json").exists()
        assert f"| round2/{name} |" in results
    assert "| student_1-1_none |" in results
    assert "stage 3, round 2:" in out.stdout


def test_a_round_whose_labelling_student_is_missing_stops_naming_it(repo_root, tmp_path):
    """Round 2 needs round 1's --next-teacher student: without it (e.g. its filter selected
    nothing) the run stops with a message that names the missing folder, and writes no round 2."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", cmd_backend="slurm", slurm_dry_run="true",
               slurm_conf=str(repo_root / "conf" / "slurm.conf"))
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", "--stage", "7", "--stop-stage", "7",
                          "--students", "1-1 2-2", "--rounds", "2", "--next-teacher", "oracle_wer"],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode != 0
    assert "Round 2: exp/student_1-1_oracle_wer/best not found" in out.stderr, out.stderr[-2000:]
    assert "exp/log/select.log" in out.stderr
    assert _sbatch_lines(out.stdout)  # round 1's stage 7 ran first
    assert not (tmp_path / "exp/round2").exists()
    bad = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", "--rounds", "two"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0 and "--rounds must be a whole number" in bad.stderr
