#!/usr/bin/env python3
"""Local job runner with Kaldi's run.pl interface.

    utils/run_local.py [--max-jobs-run N] JOB=1:N log/x.JOB.log command args... JOB ...
    utils/run_local.py log/x.log command args...          (a single job)

Every occurrence of the job variable (JOB here) in the log path and the arguments is
replaced by the job index.  Each job runs as its own process with stdout and stderr in its
own log (with the command line, start and end time, and exit code, as run.pl writes them).
Jobs run in parallel up to --max-jobs-run (default: all).  The exit status is non-zero if
any job failed, and the failed jobs' logs are named on stderr.  Resource options that only
mean something to a cluster backend (--mem, --time, --nodes, and the --num-threads a
cluster job asks for) are accepted and ignored, so the same stage line (conf/jobs.conf)
works with either backend.

Threads: the runner is given --cores C (default: the CPUs this process may run on) and
runs at most C jobs at once; each job gets an equal share, C // (jobs running at once),
through OMP_NUM_THREADS and MKL_NUM_THREADS (torch reads them), so the threads of all
running jobs together never exceed C.  The count is not on the job's command line: a job
started again elsewhere is the same command.

--gpu N places jobs on this machine's GPUs: each job gets N of them of its own, through
CUDA_VISIBLE_DEVICES, and waits until N are free, so jobs never share a GPU and never
all land on GPU 0.  The GPUs are those CUDA_VISIBLE_DEVICES lists when it is set, else
those `nvidia-smi -L` lists.  With no GPU visible the option is ignored (the jobs run as
they would without it: `--device auto` then means the CPU); asking for more GPUs per job
than the machine has is an error before any job starts.  --gpu 0 hides the GPUs from the
job (CUDA_VISIBLE_DEVICES empty), as a cluster job that asked for none would see them.

Each log's header and footer hold the job's threads, GPUs and start/end times (seconds
since the epoch), so the placement of a run can be checked afterwards.
"""
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

CLUSTER_ONLY_OPTIONS = {"--mem", "--num-threads", "--time", "--nodes", "--config"}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse(argv):
    max_jobs = None
    gpus_per_job = None
    cores = available_cores()
    while argv and argv[0].startswith("--"):
        opt = argv.pop(0)
        if "=" in opt:
            opt, value = opt.split("=", 1)
        elif argv:
            value = argv.pop(0)
        else:
            sys.exit(f"run_local.py: option {opt} needs a value")
        if opt in ("--max-jobs-run", "--gpu", "--cores"):
            if not value.isdigit():
                sys.exit(f"run_local.py: {opt} needs a whole number, not '{value}'")
            if opt == "--max-jobs-run":
                max_jobs = int(value)
            elif opt == "--cores":
                cores = max(1, int(value))
            else:
                gpus_per_job = int(value)  # the last one given wins (run.sh's --device cpu: --gpu 0)
        elif opt not in CLUSTER_ONLY_OPTIONS:
            sys.exit(f"run_local.py: unknown option {opt}")
    return (*parse_job_array(argv, "run_local.py", __doc__), max_jobs, gpus_per_job, cores)


def visible_gpus() -> list[str]:
    """The GPU ids jobs may use: CUDA_VISIBLE_DEVICES when set, else what nvidia-smi lists."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", out, flags=re.M)]


class GpuPool:
    """Hands out `per_job` GPU ids to each job; a job waits until that many are free."""

    def __init__(self, gpus: list[str], per_job: int):
        self.free = list(gpus)
        self.per_job = per_job
        self.changed = threading.Condition()

    def take(self) -> list[str]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.free) >= self.per_job)
            taken, self.free = self.free[:self.per_job], self.free[self.per_job:]
            return taken

    def give_back(self, gpus: list[str]) -> None:
        with self.changed:
            self.free.extend(gpus)
            self.changed.notify_all()


def parse_job_array(argv, prog, usage):
    """`[JOB=1:N] LOG CMD...` (after the runner's options) -> (jobvar, first, last, log, cmd).

    Shared by every runner (run_local.py, slurm.py) so they accept exactly the same lines.
    """
    jobvar, first, last = None, 1, 1
    if argv and re.fullmatch(r"[A-Za-z_]+=\d+:\d+", argv[0]):
        jobvar, rng = argv.pop(0).split("=")
        first, last = (int(x) for x in rng.split(":"))
        if last < first:
            sys.exit(f"{prog}: empty job range {first}:{last}")
    if len(argv) < 2:
        sys.exit(usage)
    logfile, command = argv[0], argv[1:]
    if jobvar and jobvar not in logfile:
        sys.exit(f"{prog}: the log file {logfile} must contain {jobvar} for an array job")
    return jobvar, first, last, logfile, command


def substitute(text, jobvar, index):
    return re.sub(rf"\b{jobvar}\b", str(index), text) if jobvar else text


def command_line(command, jobvar, index) -> str:
    """The shell command one job runs, with the job variable replaced by `index`.

    Arguments are quoted, so `cmd "a | b"` passes a literal string; a single argument
    holding shell code (as Kaldi recipes sometimes pass) still runs because bash -c gets it.
    """
    args = [substitute(a, jobvar, index) for a in command]
    return args[0] if len(args) == 1 else shlex.join(args)


def job_environment(threads: int, gpus: list[str] | None) -> dict:
    """The job's environment: its thread share and, when GPUs are handed out (or hidden), its GPUs."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return env


def run_job(jobvar, index, logfile, command, threads, gpu_pool=None, hide_gpus=False):
    logfile = substitute(logfile, jobvar, index)
    cmdline = command_line(command, jobvar, index)
    os.makedirs(os.path.dirname(logfile) or ".", exist_ok=True)
    gpus = gpu_pool.take() if gpu_pool else ([] if hide_gpus else None)
    env = job_environment(threads, gpus)
    start = time.time()
    with open(logfile, "w") as log:
        log.write(f"# {cmdline}\n# Started at {time.ctime(start)}\n")
        if gpus is not None:
            log.write(f"# CUDA_VISIBLE_DEVICES={','.join(gpus)}\n")
        log.write(f"# Runner: threads={threads} start={start:.3f}\n#\n")
        log.flush()
        try:
            rc = subprocess.call(["bash", "-c", cmdline], stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env)
        finally:
            end = time.time()
            if gpu_pool and gpus:
                gpu_pool.give_back(gpus)
        elapsed = end - start
        log.write(f"# Runner: end={end:.3f}\n"
                  f"# Accounting: time={elapsed:.0f} threads={threads}\n# Ended (code {rc}) at {time.ctime(end)}, elapsed time {elapsed:.0f} seconds\n")
    return index, rc, logfile


def plan(num_jobs: int, max_jobs: int | None, cores: int, gpus: list[str], gpus_per_job: int | None):
    """(jobs run at once, threads per job, GPU pool or None, hide the GPUs from the jobs)."""
    at_once = min(num_jobs, max_jobs or num_jobs, cores)
    pool, hide = None, False
    if gpus_per_job and gpus:
        if gpus_per_job > len(gpus):
            sys.exit(f"run_local.py: --gpu {gpus_per_job} asks for more GPUs per job than this machine "
                     f"shows ({len(gpus)}: {','.join(gpus)})")
        at_once = min(at_once, len(gpus) // gpus_per_job)
        pool = GpuPool(gpus, gpus_per_job)
    elif gpus_per_job == 0 and gpus:
        hide = True
    return at_once, max(1, cores // at_once), pool, hide


def main():
    jobvar, first, last, logfile, command, max_jobs, gpus_per_job, cores = parse(sys.argv[1:])
    indices = list(range(first, last + 1))
    gpus = visible_gpus() if gpus_per_job is not None else []
    at_once, threads, gpu_pool, hide = plan(len(indices), max_jobs, cores, gpus, gpus_per_job)
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        results = list(pool.map(lambda i: run_job(jobvar, i, logfile, command, threads, gpu_pool, hide),
                                indices))
    failed = [(i, rc, log) for i, rc, log in results if rc != 0]
    if failed:
        for i, rc, log in failed:
            print(f"run_local.py: job {i} failed with exit code {rc}; see {log}", file=sys.stderr)
            try:
                with open(log) as fh:
                    tail = fh.readlines()[-6:]
                sys.stderr.write("".join("    " + line for line in tail))
            except OSError:
                pass
        print(f"run_local.py: {len(failed)} / {len(indices)} jobs failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
