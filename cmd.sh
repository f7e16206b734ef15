# Job runners, Kaldi style: stages call
#     $decode_cmd JOB=1:$nj $dir/log/decode.JOB.log udistil ... JOB ...
# and the runner writes one log per job and fails if any job fails.
#
# backend=local (default) runs jobs as local processes (utils/run_local.py).
# To run on a cluster, set cmd_backend=slurm in the environment or here; the slurm runner
# reads its options (partition, --mem/--gpu/--nodes/--time mappings) from conf/slurm.conf
# (${slurm_conf}, default conf/slurm.conf).  slurm_dry_run=true writes each job script and
# prints its sbatch command instead of submitting (to check what a stage would ask for).
cmd_backend=${cmd_backend:-local}

case "$cmd_backend" in
  local)
    # Cap parallel jobs so --nj larger than the core count does not thrash a workstation.
    export train_cmd="run_local.py"
    export decode_cmd="run_local.py --max-jobs-run ${max_local_jobs:-$(nproc)}"
    ;;
  slurm)
    export train_cmd="slurm.py --config ${slurm_conf:-conf/slurm.conf}"
    export decode_cmd="slurm.py --config ${slurm_conf:-conf/slurm.conf}"
    if [ "${slurm_dry_run:-false}" = true ]; then
      train_cmd="$train_cmd --dry-run"; decode_cmd="$decode_cmd --dry-run"
    fi
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local|slurm)" >&2
    return 1 2>/dev/null || exit 1
    ;;
esac
