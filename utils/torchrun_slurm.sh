#!/usr/bin/env bash
# Launch a training command under torchrun (DDP), on one machine or on every node of a
# Slurm allocation, without the caller knowing which.
#
#   utils/torchrun_slurm.sh [--nproc-per-node N] [--nnodes N] [--port P] -- udistil distill ...
#
# Outside Slurm: `torchrun --standalone --nnodes 1 --nproc-per-node N` on this machine.
# Inside a Slurm job (SLURM_JOB_ID set, e.g. submitted by `$train_cmd --gpu 4 --nodes 2`):
#   --nnodes defaults to SLURM_NNODES and --nproc-per-node to the GPUs Slurm gave each node
#   (SLURM_GPUS_ON_NODE), else 1; the rendezvous host is the first node of SLURM_JOB_NODELIST,
#   the rendezvous id is the job id, and `srun` starts one torchrun per node.
# The command is run with torchrun --no-python, so it can be a console script (udistil ...)
# and reads RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR from its environment.
set -euo pipefail

nproc_per_node=""
nnodes=""
port=${UDISTIL_RDZV_PORT:-29500}
while [ $# -gt 0 ]; do
  case "$1" in
    --nproc-per-node|--nproc_per_node) nproc_per_node=$2; shift 2 ;;
    --nnodes) nnodes=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "torchrun_slurm.sh: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--nproc-per-node N] [--nnodes N] [--port P] -- command args..." >&2; exit 1; }

gpus_here() {
  if [ -n "${SLURM_GPUS_ON_NODE:-}" ]; then echo "$SLURM_GPUS_ON_NODE"; return; fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    local n; n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    [ "$n" -gt 0 ] && { echo "$n"; return; }
  fi
  echo 1
}

if [ -n "${SLURM_JOB_ID:-}" ]; then
  nnodes=${nnodes:-${SLURM_NNODES:-1}}
  nproc_per_node=${nproc_per_node:-$(gpus_here)}
  head_node=$(scontrol show hostnames "${SLURM_JOB_NODELIST:?SLURM_JOB_NODELIST is not set}" | head -n 1)
  echo "torchrun_slurm.sh: Slurm job $SLURM_JOB_ID: $nnodes node(s) x $nproc_per_node process(es), rendezvous $head_node:$port" >&2
  # One torchrun per node; each starts nproc_per_node workers that meet at the c10d store
  # on the first node.  --kill-on-bad-exit stops every node if one of them fails.
  exec srun --nodes "$nnodes" --ntasks "$nnodes" --ntasks-per-node 1 --kill-on-bad-exit=1 \
    torchrun --nnodes "$nnodes" --nproc-per-node "$nproc_per_node" \
      --rdzv-backend c10d --rdzv-endpoint "$head_node:$port" --rdzv-id "$SLURM_JOB_ID" \
      --no-python "$@"
fi

nnodes=${nnodes:-1}
if [ "$nnodes" != 1 ]; then
  echo "torchrun_slurm.sh: --nnodes $nnodes needs a Slurm allocation (cmd_backend=slurm and --nodes $nnodes)" >&2
  exit 1
fi
nproc_per_node=${nproc_per_node:-$(gpus_here)}
echo "torchrun_slurm.sh: this machine, $nproc_per_node process(es)" >&2
exec torchrun --standalone --nnodes 1 --nproc-per-node "$nproc_per_node" --no-python "$@"
