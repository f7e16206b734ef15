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


def test_bad_option_fails_fast(repo_root, tmp_path):
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", "--stgae", "3"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0 and "unknown option --stgae" in out.stderr
