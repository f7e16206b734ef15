#!/usr/bin/env bash
# One command that checks the GPU path on a machine with CUDA GPUs (sized for at most 8 minutes on one
# GPU; not yet run on one), and prints one table:
#   (a) the tests marked `gpu` (trainer device placement, bf16/fp16 autocast, GradScaler,
#       float16 decoding on the GPU);
#   (b) 200 mini-corpus clips labelled by whisper-base (stage 3's `udistil pseudo-label`) in
#       float16 and float32 on the GPU: the share of clips whose text equals the CPU float32
#       labels, and audio seconds per second (wall time of the command, model load included);
#   (c) a 6-3 student trained 30 steps from (b)'s float32 labels and stored targets, with
#       autocast (--precision auto: bf16 where supported, else fp16 with a GradScaler),
#       --num-workers 2, the encoder cache, under torchrun with one process per visible GPU.
#
#   benchmarks/gpu_check.sh [--out DIR] [--clips N] [--steps N]
#   benchmarks/gpu_check.sh --cpu-dry-run     # the same steps on the CPU, small (plumbing only)
#
# Without a GPU it runs (a) (the tests skip, saying why), explains, and exits 0; --cpu-dry-run
# then checks the rest of the script on the CPU (8 clips; bfloat16 stands in for float16,
# which the CPU refuses; 3 steps; one torchrun process).  Outputs: DIR (default
# exp_gpu_check) with each step's log and gpu_check.md (the table).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=exp_gpu_check clips=200 steps=30 dry=false
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --clips) clips=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --cpu-dry-run) dry=true; shift ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
. "$root/path.sh"
export HF_HUB_OFFLINE=1
mkdir -p "$out/log"
out=$(cd "$out" && pwd)
log() { echo "$(date '+%T') gpu_check: $*" >&2; }
t0=$SECONDS

gpus=$(python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
gpu_name=$(python -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')")
log "CUDA GPUs visible: $gpus ($gpu_name)"
rows=()
row() { rows+=("$(printf '| %s | %s |' "$1" "$2")"); }

# (a) the gpu-marked tests (they skip without CUDA).
log "(a) tests marked gpu"
(cd "$root" && python -m pytest -q -m gpu -p no:cacheprovider tests/test_device.py) > "$out/log/tests.log" 2>&1 || true
row "(a) tests marked gpu" "$(grep -E '[0-9]+ (passed|failed|skipped|error)' "$out/log/tests.log" | tail -n 1)"

if [ "$gpus" -eq 0 ] && [ "$dry" != true ]; then
  row "(b), (c)" "not run: no CUDA GPU visible here (benchmarks/gpu_check.sh --cpu-dry-run checks the plumbing on the CPU)"
  printf '%s\n' "| check | result |" "|---|---|" "${rows[@]}" | tee "$out/gpu_check.md"
  exit 0
fi

if [ "$dry" = true ]; then
  device=cpu half=bfloat16 clips=8 steps=3 procs=1 precision=bf16
else
  device=cuda half=float16 procs=$gpus precision=auto
fi

# (b) labels: CPU float32 (the reference), then the GPU in the half precision and float32.
teacher=$out/teacher
[ -s "$teacher/config.json" ] || udistil prepare-model packaged:whisper-base "$teacher" > "$out/log/prepare_model.log" 2>&1
if [ ! -s "$out/data/cuts_train.jsonl.gz" ]; then
  log "(b) synthesising $clips mini clips"
  udistil prepare-mini-corpus --out-dir "$out/data/manifests" --seed 1234 --num-train "$clips" --num-dev 8 \
    --num-test 1 > "$out/log/corpus.log" 2>&1
  for part in train dev; do
    udistil prepare-cuts --recordings "$out/data/manifests/mini_recordings_$part.jsonl.gz" \
      --supervisions "$out/data/manifests/mini_supervisions_$part.jsonl.gz" \
      --out "$out/data/cuts_$part.jsonl.gz" >> "$out/log/corpus.log" 2>&1
  done
fi
label() {  # label NAME DEVICE DTYPE [PART] [extra options]: seconds of wall time on stdout
  local name=$1 dev=$2 dtype=$3 part=${4:-train} start; shift 4 || shift $#
  start=$(date +%s.%N)
  udistil pseudo-label --model "$teacher" --batch-size 16 --device "$dev" --dtype "$dtype" "$@" \
    --in "$out/data/cuts_$part.jsonl.gz" --out "$out/labels/$name/cuts_$part.jsonl.gz" > "$out/log/label_$name.$part.log" 2>&1
  python -c "import time; print(f'{time.time() - $start:.1f}')"
}
log "(b) labelling $clips clips: cpu float32, $device $half, $device float32"
declare -A wall
wall[cpu_float32]=$(label cpu_float32 cpu float32)
wall[${device}_$half]=$(label "${device}_$half" "$device" "$half")
wall[${device}_float32]=$(label "${device}_float32" "$device" float32 train --targets-dir "$out/labels/targets")
label "${device}_float32" "$device" float32 dev --targets-dir "$out/labels/targets" > /dev/null
agreement() {  # agreement NAME WALL_S: one table cell for a labelling run
  python - "$out" "$1" "$2" <<'EOF'
import sys
from udistil.data.manifests import read_cuts

out, name, wall = sys.argv[1], sys.argv[2], float(sys.argv[3])
ref = {c.id: c.supervisions[0].custom["teacher_text"] for c in read_cuts(f"{out}/labels/cpu_float32/cuts_train.jsonl.gz")}
cuts = read_cuts(f"{out}/labels/{name}/cuts_train.jsonl.gz")
same = sum(c.supervisions[0].custom["teacher_text"] == ref[c.id] for c in cuts)
audio = sum(c.duration for c in cuts)
print(f"{same}/{len(cuts)} texts equal the CPU float32 labels ({100 * same / len(cuts):.1f} %); "
      f"{audio:.0f} s of audio in {wall:.1f} s = {audio / wall:.1f} audio-s/s (model load included)")
EOF
}
for name in "${device}_$half" "${device}_float32" cpu_float32; do
  row "(b) labels $name" "$(agreement "$name" "${wall[$name]}")"
done

# (c) a 6-3 student, 30 steps, autocast, 2 loader workers, the encoder cache, torchrun.
log "(c) training a 6-3 student for $steps steps ($procs process(es), precision $precision)"
[ -s "$out/init_student_6-3/config.json" ] || udistil make-student --teacher "$teacher" --encoder-layers 6 \
  --decoder-layers 3 --audio-context clip --out "$out/init_student_6-3" > "$out/log/make_student.log" 2>&1
rm -rf "$out/student"
start=$(date +%s.%N)
torchrun --standalone --nnodes 1 --nproc_per_node "$procs" --no-python \
  udistil distill --teacher "$teacher" --student "$out/init_student_6-3" \
    --train "$out/labels/${device}_float32/cuts_train.jsonl.gz" --dev "$out/labels/${device}_float32/cuts_dev.jsonl.gz" \
    --exp "$out/student" --batch-size 8 --max-steps "$steps" --warmup-steps 5 --lr 2e-4 --valid-every "$steps" \
    --checkpoint-every "$steps" --max-dev-cuts 8 --alpha-mse 1 --freeze-embeddings --num-workers 2 \
    --precision "$precision" --encoder-cache "$out/encoder_cache" --device "$device" > "$out/log/distill.log" 2>&1 \
  || { tail -n 20 "$out/log/distill.log" >&2; row "(c) training" "FAILED: see $out/log/distill.log"; }
train_wall=$(python -c "import time; print(f'{time.time() - $start:.1f}')")
training_cell() {  # training_cell SUMMARY WALL_S PRECISION
  python - "$@" <<'EOF'
import json, sys

s = json.load(open(sys.argv[1]))
cache = s.get("encoder_cache") or {}
print(f"{s['steps']} steps on {s['world_size']} x {s['device']} (precision {sys.argv[3]}), finished {s['finished']}; "
      f"best dev loss {s['best_dev_loss']:.3f}; encoder cache: {cache.get('computed')} computed, "
      f"{cache.get('loaded')} loaded; {s['wall_s']:.0f} s training, {float(sys.argv[2]):.0f} s with start-up")
EOF
}
if [ -s "$out/student/training_summary.json" ]; then
  row "(c) training" "$(training_cell "$out/student/training_summary.json" "$train_wall" "$precision")"
fi

row "total" "$((SECONDS - t0)) s on $gpus GPU(s) ($gpu_name)$([ "$dry" = true ] && echo '; CPU dry run: plumbing only, no GPU figure')"
printf '%s\n' "| check | result |" "|---|---|" "${rows[@]}" | tee "$out/gpu_check.md"
