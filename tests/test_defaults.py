"""One source for every default: what stage 6 and stage 3 of run.sh run is what the package's
commands do with no options (the shell reads the package's defaults, it does not repeat them)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from test_run_sh import _job_scripts, _script_command
from udistil.bin import pseudo_label
from udistil.bin._decode_args import decode_options


def _dry_run(repo_root, work, *options, check=True):
    """run.sh with the Slurm runner in dry-run mode: each job script is written and its sbatch
    command printed, nothing is submitted or run."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", cmd_backend="slurm", slurm_dry_run="true",
               slurm_conf=str(repo_root / "conf" / "slurm.conf"))
    out = subprocess.run([str(repo_root / "run.sh"), "--skip-install", "true", *options], cwd=work,
                         capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out


def _job_command(script) -> list[str]:
    """The command a job script written by the Slurm runner runs, as a word list."""
    line = next(l for l in script.read_text().splitlines() if l.startswith("cmd_template="))
    return shlex.split(shlex.split(line.split("=", 1)[1])[0])


def _resolved_distill_config(repo_root, distill_args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "udistil.bin.main", "distill", *distill_args, "--print-config"],
                         capture_output=True, text=True, check=True, cwd=repo_root, timeout=120)
    return json.loads(out.stdout)


def test_stage6_trains_what_udistil_distill_trains_with_no_options(repo_root, tmp_path):
    (tmp_path / "exp/init_student_6-3").mkdir(parents=True)
    (tmp_path / "exp/init_student_6-3/config.json").write_text("{}")
    (tmp_path / "data/select/none").mkdir(parents=True)
    (tmp_path / "data/select/none/cuts.jsonl.gz").write_bytes(b"x")
    _dry_run(repo_root, tmp_path, "--stage", "6", "--stop-stage", "6", "--train-filters", "none")
    [script] = _job_scripts(tmp_path, "distill")
    command = _script_command(script)
    assert command[:2] == ["udistil", "distill"]
    stage6 = _resolved_distill_config(repo_root, command[2:])

    required = {name: command[command.index(name) + 1] for name in ("--teacher", "--student", "--train", "--dev", "--exp")}
    standalone = _resolved_distill_config(repo_root, [w for kv in required.items() for w in kv])
    # What run.sh sets on purpose, beyond the defaults: its run layout (where the encoder
    # cache lives) and continuing a killed run.
    assert stage6["run"].pop("encoder_cache") == "exp/encoder_cache"
    assert stage6["run"].pop("resume") is True
    standalone["run"].pop("encoder_cache"), standalone["run"].pop("resume")
    assert stage6 == standalone


def test_run_sh_help_shows_the_package_defaults(repo_root):
    from udistil.student.config import LossWeights, OptimOptions, RunOptions

    out = subprocess.run([str(repo_root / "run.sh"), "--help"], capture_output=True, text=True, check=True)
    shown = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()
             if line.startswith("  --") and len(line.split()) > 1}
    assert float(shown["--distill-lr"]) == OptimOptions().lr
    assert int(shown["--distill-epochs"]) == OptimOptions().num_epochs
    assert int(shown["--distill-valid-every"]) == RunOptions().valid_every
    assert float(shown["--alpha-mse"]) == LossWeights().alpha_mse


def test_stage3_labels_each_clip_alone(repo_root, tmp_path):
    """The command stage 3 really submits, read by pseudo-label's own parser, decodes one clip
    per window.  Packing makes a clip's log-probs and entropies depend on its neighbours:
    on 100 real Arabic AMMI val clips (packaged whisper-base) entropy's AUROC for true WER > 80
    fell from 0.885 unpacked to 0.755 packed, and the filters, the fusion calibration and the
    distillation targets all read these statistics."""
    cuts = []
    for i in range(2):
        rec = Recording(id=f"r{i}", sources=[], sampling_rate=16000, num_samples=16000, duration=1.0)
        sup = SupervisionSegment(id=f"r{i}", recording_id=f"r{i}", start=0.0, duration=1.0, language="en", text="")
        cuts.append(MonoCut(id=f"r{i}", start=0.0, duration=1.0, channel=0, recording=rec, supervisions=[sup]))
    (tmp_path / "data").mkdir()
    for part in ("train", "dev"):
        CutSet.from_cuts(cuts).to_file(tmp_path / f"data/cuts_{part}.jsonl.gz")
    # The dry run stops after submitting (there are no shards to merge): only the script matters.
    _dry_run(repo_root, tmp_path, "--stage", "3", "--stop-stage", "3", "--nj", "1", check=False)
    command = _job_command(tmp_path / "exp/teacher/train/log/q/pseudo_label.sh")
    assert command[:2] == ["udistil", "pseudo-label"]
    import argparse

    parser = argparse.ArgumentParser()
    pseudo_label.add_arguments(parser)
    args = parser.parse_args(command[2:])
    assert decode_options(args).pack is False
    assert args.targets_dir is not None  # the distillation targets come from the same pass
