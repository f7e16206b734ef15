"""git_revision() against a repository whose commit is known without asking git rev-parse."""
import subprocess

from udistil.report.results import git_revision


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z",
                        "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z", "PATH": "/usr/bin:/bin"})


def test_git_revision_reads_the_commit_and_the_dirty_state(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("one\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "first")
    # The commit id as stored on disk (the branch file), not as rev-parse prints it.
    full = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    rev = git_revision(repo)
    assert len(rev) >= 7 and full.startswith(rev), (rev, full)
    (repo / "untracked.txt").write_text("data\n")
    assert git_revision(repo) == rev  # untracked files (data/, exp/) are not code changes
    (repo / "a.txt").write_text("two\n")
    assert git_revision(repo) == rev + "+dirty"


def test_git_revision_outside_a_checkout_is_unknown(tmp_path):
    assert git_revision(tmp_path) == "unknown"
