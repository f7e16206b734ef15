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
        # Test sets.
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
