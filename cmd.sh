# Job runners, Kaldi style: stages call
#     $label_cmd JOB=1:$nj $dir/log/pseudo_label.JOB.log udistil ... JOB ...
# and the runner writes one log per job and fails if any job fails.  Every step that loads a
# model or reads the audio runs through one of these, never on the launching host (under
# Slurm, the login node).  One variable per kind of job, with that kind's request from
# conf/jobs.conf (${jobs_conf}; GPUs, CPU threads, memory, time):
#     prepare_cmd  stages 1-2      label_cmd  stage 3         score_cmd  stage 4 (model filters)
#     misc_cmd     fusion fit, selection, make-student, reports
#     train_cmd    stage 6         decode_cmd stage 7
#
# cmd_backend=local (default) runs jobs as local processes (utils/run_local.py): at most
# ${max_local_jobs:-<cores>} at once, the cores (${local_cores:-all}) shared among them, and
# each job given GPUs of its own when GPUs are visible.
# cmd_backend=slurm submits job arrays (utils/slurm.py); conf/slurm.conf (${slurm_conf})
# maps the requests to sbatch options.  slurm_dry_run=true writes each job script and prints
# its sbatch command instead of submitting (to check what a stage would ask for).
cmd_backend=${cmd_backend:-local}
__cmd_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The recipe's conf/ (a symlink to the repository's in egs/*/conf), else the repository's.
jobs_conf=${jobs_conf:-conf/jobs.conf}
[ -f "$jobs_conf" ] || jobs_conf=$__cmd_dir/conf/jobs.conf
slurm_conf=${slurm_conf:-conf/slurm.conf}
[ -f "$slurm_conf" ] || slurm_conf=$__cmd_dir/conf/slurm.conf

case "$cmd_backend" in
  local)
    __runner="run_local.py --max-jobs-run ${max_local_jobs:-$(nproc)}${local_cores:+ --cores $local_cores}" ;;
  slurm)
    __runner="slurm.py --config $slurm_conf"
    [ "${slurm_dry_run:-false}" = true ] && __runner="$__runner --dry-run" ;;
  *)
    echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local|slurm)" >&2
    return 1 2>/dev/null || exit 1 ;;
esac

# job_request KIND OPTION: the value conf/jobs.conf gives OPTION (e.g. gpu) for KIND, or "".
job_request() {
  awk -v kind="$1" -v opt="--$2" '{ sub(/#.*/, "") } $1 == kind {
    for (i = 2; i < NF; i++) if ($i == opt) { print $(i + 1); exit } }' "$jobs_conf"
}

for __kind in prepare label score misc train decode; do
  __request=$(awk -v kind="$__kind" '{ sub(/#.*/, "") } $1 == kind { $1 = ""; print; exit }' "$jobs_conf")
  grep -qE "^$__kind[[:space:]]" "$jobs_conf" || {
    echo "cmd.sh: $jobs_conf has no line for the job kind '$__kind'" >&2; return 1 2>/dev/null || exit 1; }
  export "${__kind}_cmd=$__runner$__request"
done
unset __kind __request __runner __cmd_dir
