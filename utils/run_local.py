#!/usr/bin/env python3
"""Local job runner with Kaldi's run.pl interface.

    utils/run_local.py [--max-jobs-run N] JOB=1:N log/x.JOB.log command args... JOB ...
    utils/run_local.py log/x.log command args...          (a single job)

Every occurrence of the job variable (JOB here) in the log path and the arguments is
replaced by the job index.  Each job runs as its own process with stdout and stderr in its
own log (with the command line, start and end time, and exit code, as run.pl writes them).
Jobs run in parallel up to --max-jobs-run (default: all).  The exit status is non-zero if
any job failed, and the failed jobs' logs are named on stderr.  Resource options that only
mean something to a cluster backend (--mem, --gpu, --num-threads, --time) are accepted and
ignored, so the same stage line works with either backend.
"""
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

CLUSTER_ONLY_OPTIONS = {"--mem", "--gpu", "--num-threads", "--time", "--nodes", "--config"}


def parse(argv):
    max_jobs = None
    while argv and argv[0].startswith("--"):
        opt = argv.pop(0)
        if "=" in opt:
            opt, value = opt.split("=", 1)
        elif argv:
            value = argv.pop(0)
        else:
            sys.exit(f"run_local.py: option {opt} needs a value")
        if opt == "--max-jobs-run":
            max_jobs = int(value)
        elif opt not in CLUSTER_ONLY_OPTIONS:
            sys.exit(f"run_local.py: unknown option {opt}")
    return (*parse_job_array(argv, "run_local.py", __doc__), max_jobs)


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


def run_job(jobvar, index, logfile, command):
    logfile = substitute(logfile, jobvar, index)
    cmdline = command_line(command, jobvar, index)
    os.makedirs(os.path.dirname(logfile) or ".", exist_ok=True)
    start = time.time()
    with open(logfile, "w") as log:
        log.write(f"# {cmdline}\n# Started at {time.ctime()}\n#\n")
        log.flush()
        rc = subprocess.call(["bash", "-c", cmdline], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        elapsed = time.time() - start
        log.write(f"# Accounting: time={elapsed:.0f} threads=1\n# Ended (code {rc}) at {time.ctime()}, elapsed time {elapsed:.0f} seconds\n")
    return index, rc, logfile


def main():
    jobvar, first, last, logfile, command, max_jobs = parse(sys.argv[1:])
    indices = list(range(first, last + 1))
    with ThreadPoolExecutor(max_workers=max_jobs or len(indices)) as pool:
        results = list(pool.map(lambda i: run_job(jobvar, i, logfile, command), indices))
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
