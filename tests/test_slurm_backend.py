"""The Slurm backend (utils/slurm.py, utils/torchrun_slurm.sh) on a real one-node Slurm.

The cluster is started by tests/slurm/start_slurm.sh (slurmctld + slurmd + munge on
localhost; needs root and the Debian packages slurm-wlm and munge).  Without the packages
the Slurm tests skip, saying so; the tests marked "no Slurm needed" run the same generated
job script locally, so the submit path is still checked.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "utils"))
import slurm  # noqa: E402

CONF = REPO / "conf" / "slurm.conf"


def env():
    e = dict(os.environ, HF_HUB_OFFLINE="1")
    e["PATH"] = f"{REPO / 'tools' / 'venv' / 'bin'}:{REPO / 'utils'}:{e['PATH']}"
    return e


@pytest.fixture(scope="module")
def slurm_cluster():
    if not (shutil.which("slurmctld") and shutil.which("slurmd") and shutil.which("sbatch")):
        pytest.skip("Slurm is not installed: apt-get install slurm-wlm munge, then tests/slurm/start_slurm.sh")
    proc = subprocess.run(["bash", str(REPO / "tests" / "slurm" / "start_slurm.sh"), "--no-install"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        # Installed but unable to run here (no root, daemons refused by the sandbox): the
        # tests that need no Slurm still cover the generated submit scripts.
        pytest.skip(f"Slurm is installed but could not be started: {proc.stderr.strip()[-500:]}")


def run_slurm(workdir, *args, check=True):
    proc = subprocess.run([sys.executable, str(REPO / "utils" / "slurm.py"), "--config", str(CONF), *args],
                          cwd=workdir, env=env(), capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def two_shards(tmp_path, speak):
    """Four espeak cuts split into two shards by `udistil split-cuts`."""
    from lhotse import MonoCut, Recording, SupervisionSegment

    from udistil.data.manifests import write_cuts

    cuts = []
    for i, text in enumerate(["hello world", "good morning", "see you soon", "thank you"]):
        wav = tmp_path / f"u{i}.wav"
        speak(text, voice="en", path=wav)
        rec = Recording.from_file(wav, recording_id=f"u{i}")
        sup = SupervisionSegment(id=f"u{i}", recording_id=f"u{i}", start=0, duration=rec.duration,
                                 text=text, language="en")
        cuts.append(MonoCut(id=f"u{i}", start=0, duration=rec.duration, channel=0, recording=rec,
                            supervisions=[sup]))
    write_cuts(cuts, tmp_path / "cuts.jsonl.gz")
    subprocess.run(["udistil", "split-cuts", "--in", "cuts.jsonl.gz", "--nj", "2", "--out-dir", "split2"],
                   cwd=tmp_path, env=env(), check=True)
    return tmp_path


# --- no Slurm needed ------------------------------------------------------------------------

def test_config_maps_resources_to_sbatch_options():
    conf = slurm.SlurmConfig.parse(CONF)
    # Preemption: SIGTERM to the job script 5 min before the limit, and the task requeued.
    assert conf.command[:2] == ["sbatch", "--export=ALL"] and "--requeue" in conf.command
    assert any(a.startswith("--signal=B:TERM@") for a in conf.command)
    args = conf.sbatch_args({"mem": "8G", "gpu": "2", "num_threads": "4", "time": "1:00:00"})
    assert args == ["--gres=gpu:2", "--mem", "8G", "--cpus-per-task", "4", "--time", "1:00:00"]
    assert conf.sbatch_args({}) == []  # gpu=0 by default adds nothing
    with pytest.raises(slurm.SlurmError, match="--foo is not in the slurm config"):
        conf.sbatch_args({"foo": "1"})


def test_generated_job_script_runs_locally(tmp_path):
    """The exact script sbatch would get, run by bash with the array index Slurm would set."""
    spec = slurm.parse_args(["JOB=1:2", "log/echo.JOB.log", "echo", "shard JOB of 'two words'"])
    script = tmp_path / "job.sh"
    os.chdir(tmp_path)
    script.write_text(slurm.job_script(spec, "1", script))
    for index in (1, 2):
        subprocess.run(["bash", str(script)], env=dict(env(), SLURM_ARRAY_TASK_ID=str(index)), check=True)
        log = (tmp_path / "log" / f"echo.{index}.log").read_text()
        assert f"shard {index} of 'two words'" in log
        assert slurm.finished_ok(str(tmp_path / "log" / f"echo.{index}.log"),
                                 slurm.command_line(spec.command, "JOB", index))
    rc = subprocess.run(["bash", "-c", f"SLURM_ARRAY_TASK_ID=3 bash {script}"], env=env()).returncode
    assert rc == 0  # index 3 just runs the same command with 3


def test_job_script_takes_threads_from_the_allocation_and_passes_sigterm_on(tmp_path):
    """The job's threads are SLURM_CPUS_PER_TASK (never the submitting host's), and a SIGTERM
    to the job script (Slurm's --signal=B:TERM) reaches the command, whose own exit code
    is logged."""
    import signal
    import time

    os.chdir(tmp_path)
    command = ("echo threads=$OMP_NUM_THREADS; trap 'echo checkpointed; exit 7' TERM; "
               "touch started; while true; do sleep 0.1; done")
    spec = slurm.parse_args(["log/train.log", command])
    script = tmp_path / "job.sh"
    script.write_text(slurm.job_script(spec, "1", script))
    proc = subprocess.Popen(["bash", str(script)], env=dict(env(), SLURM_CPUS_PER_TASK="6"))
    deadline = time.time() + 60
    while not (tmp_path / "started").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 7
    log = (tmp_path / "log" / "train.log").read_text()
    assert "threads=6" in log and "# Runner: threads=6" in log
    assert "SIGTERM: passed on" in log and "checkpointed" in log and "# Ended (code 7)" in log


# --- real Slurm -----------------------------------------------------------------------------

def test_sharded_job_through_slurm(slurm_cluster, two_shards):
    work = two_shards
    proc = run_slurm(work, "--mem", "1G", "JOB=1:2", "exp/log/copy.JOB.log",
                     "udistil", "merge-cuts", "--out", "exp/shards/cuts.JOB.jsonl.gz", "split2/cuts.JOB.jsonl.gz")
    assert "submitted job array" in proc.stderr
    from udistil.data.manifests import read_cuts
    for j in (1, 2):
        log = (work / "exp" / "log" / f"copy.{j}.log").read_text()
        assert "# Slurm job " in log and log.rstrip().splitlines()[-1].startswith("# Ended (code 0)")
        assert [c.id for c in read_cuts(work / f"exp/shards/cuts.{j}.jsonl.gz")] == \
               [c.id for c in read_cuts(work / f"split2/cuts.{j}.jsonl.gz")]
    # Re-submission: both shards finished, nothing is queued.
    again = run_slurm(work, "--mem", "1G", "JOB=1:2", "exp/log/copy.JOB.log",
                      "udistil", "merge-cuts", "--out", "exp/shards/cuts.JOB.jsonl.gz", "split2/cuts.JOB.jsonl.gz")
    assert "2 / 2 jobs already finished" in again.stderr and "submitted" not in again.stderr


def test_failed_task_fails_the_runner(slurm_cluster, tmp_path):
    proc = run_slurm(tmp_path, "JOB=1:2", "log/f.JOB.log", "test JOB -ne 2", check=False)
    assert proc.returncode == 1
    assert "job 2 failed (exit code 1)" in proc.stderr and "1 / 2 jobs failed" in proc.stderr
    # Only the failed shard is submitted again.
    again = run_slurm(tmp_path, "JOB=1:2", "log/f.JOB.log", "test JOB -ne 2", check=False)
    assert "1 / 2 jobs already finished" in again.stderr and again.returncode == 1


@pytest.mark.skipif(not (REPO / "udistil" / "bin" / "pseudo_label.py").exists(), reason="no udistil pseudo-label yet")
def test_pseudo_label_stage3_through_slurm(slurm_cluster, two_shards, tiny_whisper_dir):
    """Stage 3 as run.sh runs it, with --nj 2 on Slurm and the tiny random Whisper."""
    work = two_shards
    run_slurm(work, "--num-threads", "1", "JOB=1:2", "exp/teacher/log/pseudo_label.JOB.log",
              "udistil", "pseudo-label", "--model", str(tiny_whisper_dir), "--batch-size", "2",
              "--in", "split2/cuts.JOB.jsonl.gz", "--out", "exp/teacher/shards/cuts.JOB.jsonl.gz")
    from udistil.data.manifests import read_cuts
    labelled = [c for j in (1, 2) for c in read_cuts(work / f"exp/teacher/shards/cuts.{j}.jsonl.gz")]
    assert sorted(c.id for c in labelled) == ["u0", "u1", "u2", "u3"]
    for cut in labelled:
        custom = cut.supervisions[0].custom
        assert "teacher_text" in custom and len(custom["teacher_logprobs"]) == len(custom["teacher_tokens"])


def test_torchrun_under_slurm_rendezvous(slurm_cluster, tmp_path):
    (tmp_path / "ddp_check.py").write_text(
        "import torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([dist.get_rank() + 1.0]); dist.all_reduce(t)\n"
        "print(f'rank {dist.get_rank()} of {dist.get_world_size()} sum {t.item():.0f}')\n"
        "dist.destroy_process_group()\n")
    run_slurm(tmp_path, "--nodes", "1", "log/ddp.log", "torchrun_slurm.sh", "--nproc-per-node", "2",
              "--port", "29531", "--", "python", "ddp_check.py")
    log = (tmp_path / "log" / "ddp.log").read_text()
    assert "rendezvous localhost:29531" in log
    assert "rank 0 of 2 sum 3" in log and "rank 1 of 2 sum 3" in log
