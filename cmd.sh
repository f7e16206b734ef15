# Job runners, Kaldi style: stages call
#     $decode_cmd JOB=1:$nj $dir/log/decode.JOB.log udistil ... JOB ...
# and the runner writes one log per job and fails if any job fails.
#
# backend=local (default) runs jobs as local processes (utils/run_local.py).
# To run on a cluster, set cmd_backend=slurm in the environment or here; the slurm runner
# reads its options (partition, --mem/--gpu/--time mappings) from conf/slurm.conf.
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
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local|slurm)" >&2
    return 1 2>/dev/null || exit 1
    ;;
esac
