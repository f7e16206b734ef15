"""Preemption: SIGTERM (Slurm's --signal, scancel, a preempting job) makes `udistil distill`
write a checkpoint and exit non-zero; --resume then ends with the weights of a run that was
never interrupted.  The Slurm side (--requeue, --signal=B:TERM, the job script passing the
signal on) is in tests/test_slurm_backend.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from test_student_distill import corpus, student_dir  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
STEPS = 16


def distill_command(teacher, student, corpus, exp):
    return [sys.executable, "-m", "udistil.bin.main", "distill",
            "--teacher", str(teacher), "--student", str(student),
            "--train", str(corpus["train"]), "--dev", str(corpus["dev"]), "--exp", str(exp),
            "--batch-size", "2", "--lr", "2e-3", "--warmup-steps", "2", "--max-steps", str(STEPS),
            "--schedule", "cosine", "--checkpoint-every", "100", "--valid-every", "100", "--resume"]


def final_weights(exp):
    from udistil.student.checkpoint import list_checkpoints

    state = torch.load(list_checkpoints(exp)[-1] / "state.pt", map_location="cpu", weights_only=False)
    assert state["step"] == STEPS
    return state["model"]


def test_sigterm_checkpoints_and_the_rerun_ends_with_the_uninterrupted_weights(
        tiny_whisper_dir, student_dir, corpus, tmp_path):  # noqa: F811
    from udistil.student.checkpoint import list_checkpoints

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full = tmp_path / "full"
    subprocess.run(distill_command(tiny_whisper_dir, student_dir, corpus, full), env=env, check=True,
                   capture_output=True, timeout=600)

    exp = tmp_path / "preempted"
    cmd = distill_command(tiny_whisper_dir, student_dir, corpus, exp)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = exp / "log" / "metrics.jsonl"
    deadline = time.time() + 600
    # Mid-epoch (3 batches an epoch), after the first step and long before the last.
    while not (metrics.is_file() and metrics.read_text().strip()):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode not in (0, -signal.SIGTERM), stderr[-2000:]  # stopped itself, non-zero
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    checkpoints = list_checkpoints(exp)
    assert len(checkpoints) == 1 and 0 < int(checkpoints[0].name.split("-")[1]) < STEPS, checkpoints
    assert not (exp / "training_summary.json").exists()

    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    resumed, uninterrupted = final_weights(exp), final_weights(full)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    assert json.loads((exp / "training_summary.json").read_text())["finished"]
