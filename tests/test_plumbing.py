"""utils/parse_options.sh and utils/run_local.py: the Kaldi-style shell plumbing."""
import subprocess
import textwrap

import pytest


@pytest.fixture
def script(tmp_path, repo_root):
    path = tmp_path / "recipe.sh"
    path.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        set -euo pipefail
        # First stage.
        stage=0
        stop_stage=8
        # Test sets, a comment
        # of two lines.
        test_sets="a b"
        . {repo_root}/utils/parse_options.sh
        echo "stage=$stage stop_stage=$stop_stage test_sets=$test_sets rest=$*"
        """))
    path.chmod(0o755)
    return path


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def test_every_variable_is_a_flag(script):
    out = run([str(script), "--stage", "3", "--stop-stage=6", "--test-sets", "x y z", "extra"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stage=3 stop_stage=6 test_sets=x y z rest=extra"


def test_unknown_flag_is_an_error_not_a_silent_default(script):
    out = run([str(script), "--stgae", "3"])
    assert out.returncode != 0 and "unknown option --stgae" in out.stderr


def test_help_lists_variables_with_values_and_comments(script):
    out = run([str(script), "--help"])
    assert out.returncode == 0
    assert "--stage" in out.stdout and "First stage." in out.stdout and "--test-sets" in out.stdout
    # A comment of several lines is the option's help whole, not its last line.
    assert "Test sets, a comment of two lines." in out.stdout


def test_run_local_substitutes_job_and_writes_one_log_per_job(tmp_path, repo_root):
    runner = repo_root / "utils" / "run_local.py"
    out = run([str(runner), "JOB=1:3", str(tmp_path / "log" / "x.JOB.log"),
               "bash", "-c", f"echo job JOB > {tmp_path}/out.JOB"])
    assert out.returncode == 0, out.stderr
    for j in (1, 2, 3):
        assert (tmp_path / f"out.{j}").read_text().strip() == f"job {j}"
        log = (tmp_path / "log" / f"x.{j}.log").read_text()
        assert "# Ended (code 0)" in log


def test_run_local_fails_if_any_job_fails_and_names_its_log(tmp_path, repo_root):
    runner = repo_root / "utils" / "run_local.py"
    out = run([str(runner), "--max-jobs-run", "1", "JOB=1:3", str(tmp_path / "x.JOB.log"),
               "bash", "-c", "test JOB -ne 2"])
    assert out.returncode == 1
    assert "x.2.log" in out.stderr and "1 / 3 jobs failed" in out.stderr
    assert "# Ended (code 1)" in (tmp_path / "x.2.log").read_text()


def _gpu_jobs(tmp_path, repo_root, gpus_per_job, visible, jobs=6):
    """Run `jobs` jobs with --gpu under CUDA_VISIBLE_DEVICES=visible; each records what it got."""
    import os

    runner = repo_root / "utils" / "run_local.py"
    record = 'echo "$CUDA_VISIBLE_DEVICES $(date +%s.%N)" > {d}/gpu.JOB; sleep 0.4; date +%s.%N >> {d}/gpu.JOB'
    out = run([str(runner), "--gpu", str(gpus_per_job), f"JOB=1:{jobs}", str(tmp_path / "log" / "g.JOB.log"),
               "bash", "-c", record.format(d=tmp_path)],
              env=dict(os.environ, CUDA_VISIBLE_DEVICES=visible))
    got = []
    for j in range(1, jobs + 1) if out.returncode == 0 else []:
        lines = (tmp_path / f"gpu.{j}").read_text().split("\n")
        first = lines[0].split(" ")
        got.append((first[0], float(first[1]), float(lines[1])))
    return out, got


def test_run_local_gives_each_job_gpus_of_its_own(tmp_path, repo_root):
    out, got = _gpu_jobs(tmp_path, repo_root, 1, "3,5,7")
    assert out.returncode == 0, out.stderr
    assert {gpu for gpu, _, _ in got} <= {"3", "5", "7"} and len(got) == 6
    for i, (gpu_a, start_a, end_a) in enumerate(got):  # jobs that ran at once never share a GPU
        for gpu_b, start_b, end_b in got[i + 1:]:
            if start_a < end_b and start_b < end_a:
                assert gpu_a != gpu_b
    assert "# CUDA_VISIBLE_DEVICES=" in (tmp_path / "log" / "g.1.log").read_text()

    out, got = _gpu_jobs(tmp_path, repo_root, 2, "0,1,2", jobs=3)
    assert out.returncode == 0, out.stderr
    assert all(len(set(gpu.split(","))) == 2 for gpu, _, _ in got)
    spans = sorted((start, end) for _, start, end in got)  # 3 GPUs hold one 2-GPU job at a time
    assert all(later[0] >= earlier[1] - 0.05 for earlier, later in zip(spans, spans[1:]))


def test_run_local_gpu_requests_it_cannot_meet(tmp_path, repo_root):
    out, _ = _gpu_jobs(tmp_path, repo_root, 4, "0,1,2", jobs=2)
    assert out.returncode != 0 and "--gpu 4" in out.stderr and "(3: 0,1,2)" in out.stderr
    out, got = _gpu_jobs(tmp_path, repo_root, 1, "", jobs=2)  # no GPU: the jobs run as on a CPU box
    assert out.returncode == 0, out.stderr
    assert [gpu for gpu, _, _ in got] == ["", ""]
