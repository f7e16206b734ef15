"""Every command in the README runs as written on a fresh clone.

The README's ```bash blocks are read as a user would paste them.  Each `udistil ACTION ...`
must parse with that action's own parser; each `./run.sh ...` may only use options that the
run.sh it names lists in `--help` (the generic one, or a recipe's after `cd egs/<recipe>`);
the cheap ones, every `--help` and a stage-0 run, are run for real.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from udistil.bin.main import available_actions, load_action


def readme_commands(readme: Path) -> list[tuple[str, list[str]]]:
    """(directory relative to the repository, words) for each command line of the bash blocks."""
    commands, cwd, in_block, pending = [], ".", False, ""
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```bash" and not in_block
            continue
        if not in_block:
            continue
        line = pending + line
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "cd":
            cwd = words[1]
            continue
        commands.append((cwd, words))
    return commands


def option_names(help_text: str) -> set[str]:
    return set(re.findall(r"^\s+(--[a-z0-9-]+)", help_text, flags=re.M))


@pytest.fixture(scope="module")
def commands(repo_root):
    found = readme_commands(repo_root / "README.md")
    assert len(found) >= 15, found  # the parser found the README's blocks
    return found


def test_every_udistil_command_parses(commands):
    udistil = [words for _, words in commands if words[0] == "udistil"]
    assert udistil
    for words in udistil:
        assert words[1] in available_actions(), words
        module = load_action(words[1])
        parser = argparse.ArgumentParser(prog=f"udistil {words[1]}")
        module.add_arguments(parser)
        try:
            parser.parse_args(words[2:])
        except SystemExit as e:
            pytest.fail(f"README: `{shlex.join(words)}` does not parse (exit {e.code})")


def test_every_run_sh_option_exists(repo_root, commands):
    helps = {}
    runs = [(cwd, words) for cwd, words in commands if words[0] == "./run.sh"]
    assert any(cwd != "." for cwd, _ in runs) and any(cwd == "." for cwd, _ in runs)
    for cwd, words in runs:
        if cwd not in helps:
            out = subprocess.run(["./run.sh", "--help"], cwd=repo_root / cwd, capture_output=True, text=True,
                                 check=True, timeout=120)
            helps[cwd] = option_names(out.stdout) | {"--help"}
        used = {w.split("=", 1)[0] for w in words[1:] if w.startswith("--")}
        assert used <= helps[cwd], f"README ({cwd}): {shlex.join(words)}: unknown {sorted(used - helps[cwd])}"


def test_the_cheap_commands_run(repo_root, commands, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=f"{repo_root / 'tools/venv/bin'}:{os.environ['PATH']}")
    ran = []
    for cwd, words in commands:
        if words[-1] == "--help":
            program = str(repo_root / cwd / words[0]) if words[0].startswith("./") else words[0]
            out = subprocess.run([program, *words[1:]], cwd=repo_root / cwd, capture_output=True, text=True,
                                 env=env, timeout=120)
            assert out.returncode == 0 and "--" in out.stdout, (words, out.stderr[-1000:])
            ran.append(words)
        elif words[0] == "./run.sh" and cwd == "." and "--stop-stage" in words \
                and words[words.index("--stop-stage") + 1] == "0":
            out = subprocess.run([str(repo_root / "run.sh"), *words[1:], "--skip-install", "true"], cwd=tmp_path,
                                 capture_output=True, text=True, env=env, timeout=600)
            assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
            assert (tmp_path / "exp/models/teacher/config.json").is_file()
            ran.append(words)
    assert any(w[-1] == "--help" for w in ran) and any("--stop-stage" in w for w in ran), ran
