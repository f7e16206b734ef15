"""The generic run.sh end to end on a tiny mini corpus with a tiny random teacher.

Checks the stage plumbing (options, sharding through the job runner, skip-if-done, the final
table), not accuracy: the real whisper-base is exercised by ./run.sh itself and by the
model tests.
"""
import json
import os
import subprocess

import pytest

from udistil.data.manifests import read_cuts


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, repo_root, tiny_whisper_dir):
    work = tmp_path_factory.mktemp("recipe")
    cmd = [str(repo_root / "run.sh"), "--skip-install", "true", "--teacher", str(tiny_whisper_dir),
           "--mini-train-size", "9", "--mini-dev-size", "3", "--mini-test-size", "3", "--nj", "2",
           # The tiny teacher has 2+2 layers; two steps prove the stage, not the student.
           "--students", "1-1", "--distill-steps", "2"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
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

def _dry_run(repo_root, work, *options):
    """run.sh with cmd_backend=slurm in dry-run: utils/slurm.py writes each job script and
    prints the sbatch command instead of submitting.  Returns run.sh's stdout."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", cmd_backend="slurm", slurm_dry_run="true",
               slurm_conf=str(repo_root / "conf" / "slurm.conf"))
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", *options], cwd=work,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def _job_command(script):
    """The command a job script generated by utils/slurm.py runs, as a word list."""
    import shlex

    line = next(l for l in script.read_text().splitlines() if l.startswith("cmd_template="))
    return shlex.split(shlex.split(line.split("=", 1)[1])[0])


def _stage6(repo_root, work, *options):
    """Stage 6 for one student on data/select/none (inputs faked: nothing is run)."""
    (work / "exp/init_student_1-1").mkdir(parents=True)
    (work / "exp/init_student_1-1/config.json").write_text("{}")
    (work / "data/select/none").mkdir(parents=True)
    (work / "data/select/none/cuts.jsonl.gz").write_bytes(b"x")
    stdout = _dry_run(repo_root, work, "--stage", "6", "--stop-stage", "6", "--students", "1-1",
                      "--train-filters", "none", *options)
    sbatch = [l for l in stdout.splitlines() if l.startswith("sbatch ")]
    assert len(sbatch) == 1, stdout
    return sbatch[0].split(), _job_command(work / "exp/student_1-1_none/log/q/distill.sh")


def test_stage6_by_default_asks_for_no_gpu_and_runs_one_process(repo_root, tmp_path):
    sbatch, command = _stage6(repo_root, tmp_path)
    assert not any(a.startswith(("--gres", "--nodes")) for a in sbatch)
    assert command[:2] == ["udistil", "distill"] and command[command.index("--device") + 1] == "auto"


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
    subprocess.run(["bash", "exp/student_1-1_none/log/q/distill.sh"], cwd=tmp_path, env=env, check=True,
                   timeout=120)
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
    sbatch = [l.split() for l in stdout.splitlines() if l.startswith("sbatch ")]
    assert len(sbatch) == 2 and all("--gres=gpu:1" in s for s in sbatch)  # the teacher on two test sets
    for part in ("test_clean", "test_noisy"):
        command = _job_command(tmp_path / f"exp/teacher/log/q/decode_{part}.sh")
        assert command[:2] == ["udistil", "decode"]
        assert command[command.index("--device") + 1] == "cuda" and command[command.index("--dtype") + 1] == "float16"


def test_cluster_options_are_checked(repo_root, tmp_path):
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", "--distill-gpus", "two"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0 and "--distill-gpus must be a whole number" in out.stderr
