#!/usr/bin/env python3
"""Slurm job runner with the interface of utils/run_local.py (Kaldi's run.pl / slurm.pl).

    utils/slurm.py [--config conf/slurm.conf] [--mem 8G] [--gpu 1] [--num-threads 4] \
        [--time 4:00:00] [--max-jobs-run N] JOB=1:N exp/log/x.JOB.log command args... JOB ...
    utils/slurm.py [options] exp/log/x.log command args...          (a single job)

Submits one sbatch job array (one task per index), waits for it (polling squeue), and exits non-zero if any
task failed, naming the failed tasks' logs.  Each task writes its own log with the same
header and footer as run_local.py ("# <command>", "# Ended (code N) ...").

Resource options are translated to sbatch options by the config file (Kaldi's slurm.conf
format, see conf/slurm.conf); an option the config does not mention is an error, so a typo
never silently runs with the default.  --max-jobs-run N becomes the array throttle (%N).

Re-running the same command skips the indices whose log already ends with "code 0" for
the identical command line, so a re-submitted stage only queues unfinished shards (delete
a log to force its job to run again).

The generated job script is kept next to the logs (<logdir>/q/<name>.sh) with Slurm's own
output (<logdir>/q/<name>.<index>.out), so a failed submission can be inspected and re-run
by hand.  `--dry-run` writes the script and prints the sbatch command without submitting.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The same job-line parsing, JOB substitution and quoting as the local runner.
from run_local import command_line, parse_job_array, substitute  # noqa: E402

RUNNER_OPTIONS = {"--config", "--max-jobs-run", "--dry-run"}
# Stands for the job index inside the generated script; all word characters, so shlex
# quotes a template exactly as it quotes the command with a number in its place.
INDEX_PLACEHOLDER = "__UDISTIL_JOB_INDEX__"
ENDED_RE = re.compile(r"^# Ended \(code (-?\d+)\)")


class SlurmError(Exception):
    pass


@dataclass
class SlurmConfig:
    """Kaldi slurm.conf: a base command, per-option translations and defaults."""

    command: list[str] = field(default_factory=lambda: ["sbatch"])
    # name -> {value or "*": [sbatch args with $0 for the value]}
    options: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, path: str | os.PathLike) -> "SlurmConfig":
        conf = cls()
        path = Path(path)
        if not path.is_file():
            raise SlurmError(f"{path}: slurm config not found (copy conf/slurm.conf from the repository root)")
        for lineno, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            words = shlex.split(line)
            key, rest = words[0], words[1:]
            if key == "command":
                if not rest:
                    raise SlurmError(f"{path}:{lineno}: 'command' needs the sbatch command")
                conf.command = rest
            elif key in ("option", "default") and rest and "=" in rest[0]:
                name, value = rest[0].split("=", 1)
                if key == "default":
                    conf.defaults[name] = value
                else:
                    conf.options.setdefault(name, {})[value] = rest[1:]
            else:
                raise SlurmError(f"{path}:{lineno}: cannot parse {raw.strip()!r} "
                                       "(expected 'command ...', 'option name=value ...' or 'default name=value')")
        return conf

    def sbatch_args(self, requested: dict[str, str]) -> list[str]:
        """Translate --name value pairs (plus defaults) into sbatch options."""
        values = {**self.defaults, **requested}
        args: list[str] = []
        for name, value in values.items():
            table = self.options.get(name)
            if table is None:
                raise SlurmError(f"option --{name.replace('_', '-')} is not in the slurm config; "
                                       f"add an 'option {name}=* ...' line")
            if value in table:
                template = table[value]
            elif "*" in table:
                template = table["*"]
            else:
                raise SlurmError(f"--{name.replace('_', '-')} {value}: the slurm config has no "
                                       f"'option {name}={value}' or 'option {name}=*' line")
            args += [word.replace("$0", value) for word in template]
        return args


@dataclass
class JobSpec:
    jobvar: str | None
    first: int
    last: int
    logfile: str
    command: list[str]
    resources: dict[str, str]
    config: str | None
    max_jobs: int | None
    dry_run: bool


def parse_args(argv: list[str]) -> JobSpec:
    argv = list(argv)
    resources: dict[str, str] = {}
    config, max_jobs, dry_run = None, None, False
    while argv and argv[0].startswith("--"):
        opt = argv.pop(0)
        if opt == "--dry-run":
            dry_run = True
            continue
        if "=" in opt:
            opt, value = opt.split("=", 1)
        elif argv:
            value = argv.pop(0)
        else:
            sys.exit(f"slurm.py: option {opt} needs a value")
        if opt == "--config":
            config = value
        elif opt == "--max-jobs-run":
            max_jobs = int(value)
        else:
            resources[opt[2:].replace("-", "_")] = value
    jobvar, first, last, logfile, command = parse_job_array(argv, "slurm.py", __doc__)
    return JobSpec(jobvar, first, last, logfile, command, resources, config, max_jobs, dry_run)


def log_path(spec: JobSpec, index) -> str:
    return substitute(spec.logfile, spec.jobvar, index)


def finished_ok(logfile: str, cmdline: str) -> bool:
    """True if `logfile` is a finished log of this very command that ended with code 0."""
    try:
        with open(logfile, errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return False
    if not lines or lines[0] != f"# {cmdline}":
        return False
    ended = [m for m in (ENDED_RE.match(line) for line in lines[-3:]) if m]
    return bool(ended) and ended[-1].group(1) == "0"


def job_exit_code(logfile: str) -> int | None:
    """The exit code a task wrote at the end of its log, or None if it never got there."""
    try:
        with open(logfile, errors="replace") as fh:
            tail = fh.read().splitlines()[-3:]
    except OSError:
        return None
    codes = [int(m.group(1)) for m in (ENDED_RE.match(line) for line in tail) if m]
    return codes[-1] if codes else None


def job_script(spec: JobSpec, threads: str, script_path: Path) -> str:
    """A bash script that runs the task given by $SLURM_ARRAY_TASK_ID and logs like run_local.py.

    The command and the log path are stored once as templates; the index replaces the
    placeholder at run time, so the script does not grow with the number of jobs.

    Threads come from the job's own allocation (SLURM_CPUS_PER_TASK, set by --cpus-per-task),
    through OMP_NUM_THREADS / MKL_NUM_THREADS, never from the host that submitted it.
    A SIGTERM (Slurm's --signal=B:TERM@..., or scancel) is passed on to the command, which
    can checkpoint; when it then fails, the task is requeued (scontrol requeue) if the job
    was submitted with --requeue, and a rerun resumes it.
    """
    cmd_template = command_line(spec.command, spec.jobvar, INDEX_PLACEHOLDER if spec.jobvar else None)
    log_template = log_path(spec, INDEX_PLACEHOLDER if spec.jobvar else None)
    return f"""#!/usr/bin/env bash
# Generated by utils/slurm.py; submitted with sbatch --array.  To re-run index 3 by hand:
#     SLURM_ARRAY_TASK_ID=3 bash {shlex.quote(str(script_path.resolve()))}
cd {shlex.quote(os.getcwd())}
task=${{SLURM_ARRAY_TASK_ID:-1}}
cmd_template={shlex.quote(cmd_template)}
log_template={shlex.quote(log_template)}
cmd=${{cmd_template//{INDEX_PLACEHOLDER}/$task}}
log=${{log_template//{INDEX_PLACEHOLDER}/$task}}
threads=${{SLURM_CPUS_PER_TASK:-{threads}}}
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
mkdir -p "$(dirname "$log")"
start=$(date +%s)
{{ printf '# %s\\n' "$cmd"; echo "# Started at $(date)"; echo "# Slurm job ${{SLURM_ARRAY_JOB_ID:-${{SLURM_JOB_ID:-none}}}}_$task on $(hostname)"; echo "# CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}}"; echo "# Runner: threads=$threads start=$start"; echo "#"; }} > "$log"
signalled=false
bash -c "$cmd" >> "$log" 2>&1 < /dev/null &
child=$!
trap 'signalled=true; echo "# SIGTERM: passed on to the command (it checkpoints and stops)" >> "$log"; kill -TERM $child 2>/dev/null' TERM
wait $child; rc=$?
# The trap ends the first wait early; the second returns the command's own exit code.
if [ "$signalled" = true ]; then wait $child; rc=$?; fi
elapsed=$(( $(date +%s) - start ))
echo "# Accounting: time=$elapsed threads=$threads" >> "$log"
echo "# Ended (code $rc) at $(date), elapsed time $elapsed seconds" >> "$log"
if [ "$signalled" = true ] && [ "$rc" -ne 0 ] && [ -n "${{SLURM_JOB_ID:-}}" ] && \\
   [ "$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | grep -o 'Requeue=[01]')" = Requeue=1 ]; then
  echo "# requeued: the rerun resumes from the checkpoint" >> "$log"
  scontrol requeue "${{SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}}${{SLURM_ARRAY_JOB_ID:+_$task}}" || true
fi
exit $rc
"""


def submit(sbatch: list[str]) -> str:
    """Run sbatch --parsable; return the job id."""
    proc = subprocess.run(sbatch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SlurmError(f"sbatch failed ({proc.returncode}): {proc.stderr.strip()}\n  command: {shlex.join(sbatch)}")
    # --parsable prints "jobid" or "jobid;cluster".
    return proc.stdout.strip().split(";")[0]


def wait_for(job_id: str, max_interval: float = 10.0) -> None:
    """Poll squeue until no task of the job is pending or running.

    Our own loop rather than `sbatch --wait`, whose polling interval grows to 30 s and
    would add that much to every short job.  The interval here grows from 0.5 s to
    max_interval, so a long job costs one squeue call every few seconds.  A failing squeue
    (controller busy or restarting) is retried; "Invalid job id" means the job is gone.
    """
    interval = 0.5
    while True:
        proc = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode == 0 and not proc.stdout.strip():
            return
        if proc.returncode != 0 and "Invalid job id" in proc.stderr:
            return
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)


def submit_and_wait(sbatch: list[str]) -> None:
    """Submit, print the job id, and wait; on Ctrl-C or SIGTERM cancel the job first."""
    job_id = submit(sbatch)
    print(f"slurm.py: submitted job array {job_id}", file=sys.stderr)

    def cancel(signum, frame):
        subprocess.call(["scancel", job_id])
        print(f"slurm.py: cancelled job {job_id}", file=sys.stderr)
        sys.exit(130)

    signal.signal(signal.SIGINT, cancel)
    signal.signal(signal.SIGTERM, cancel)
    wait_for(job_id)


def main(argv=None) -> int:
    spec = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = SlurmConfig.parse(spec.config) if spec.config else SlurmConfig()
        resource_args = config.sbatch_args(spec.resources)
    except SlurmError as e:
        print(f"slurm.py: {e}", file=sys.stderr)
        return 1

    indices = list(range(spec.first, spec.last + 1))
    if spec.jobvar is None:
        indices = [None]
    todo = [i for i in indices
            if not finished_ok(log_path(spec, i), command_line(spec.command, spec.jobvar, i))]
    if len(todo) < len(indices):
        print(f"slurm.py: {len(indices) - len(todo)} / {len(indices)} jobs already finished "
              f"(their log ends with code 0 for this command): skipped; delete a log to re-run it",
              file=sys.stderr)
    if not todo:
        return 0

    logdir = Path(log_path(spec, 1 if spec.jobvar else None)).parent
    qdir = logdir / "q"
    qdir.mkdir(parents=True, exist_ok=True)
    name = Path(spec.logfile).name.replace(f".{spec.jobvar}", "").replace(".log", "") if spec.jobvar \
        else Path(spec.logfile).stem
    script = qdir / f"{name}.sh"
    # Only where the job has no SLURM_CPUS_PER_TASK (a config without --cpus-per-task).
    threads = spec.resources.get("num_threads", config.defaults.get("num_threads", "1"))
    script.write_text(job_script(spec, threads, script))

    array = ",".join(str(i if i is not None else 1) for i in todo)
    if spec.max_jobs:
        array += f"%{spec.max_jobs}"
    sbatch = (config.command + resource_args
              + ["--parsable", f"--job-name={name}", f"--chdir={os.getcwd()}",
                 f"--array={array}", f"--output={qdir / name}.%a.out", str(script)])
    if spec.dry_run:
        print(shlex.join(sbatch))
        return 0
    try:
        submit_and_wait(sbatch)
    except SlurmError as e:
        print(f"slurm.py: {e}", file=sys.stderr)
        return 1

    failed = []
    for i in todo:
        log = log_path(spec, i)
        code = job_exit_code(log)
        if code != 0:
            failed.append((i, code, log))
    if failed:
        for i, code, log in failed:
            why = (f"exit code {code}" if code is not None else
                   f"no 'Ended' line: killed by Slurm (time or memory limit, node failure, cancelled)? "
                   f"see {qdir / name}.{i if i is not None else 1}.out")
            print(f"slurm.py: job {i if i is not None else ''} failed ({why}); see {log}", file=sys.stderr)
            try:
                with open(log, errors="replace") as fh:
                    sys.stderr.write("".join("    " + line for line in fh.readlines()[-6:]))
            except OSError:
                pass
        print(f"slurm.py: {len(failed)} / {len(todo)} jobs failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
