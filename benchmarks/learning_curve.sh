#!/usr/bin/env bash
# The learning curve of one student: dev loss and dev WER after each epoch.
#
#   benchmarks/learning_curve.sh RUN_DIR EXP DEV_CUTS [EVERY]
#
# EXP (relative to RUN_DIR) was trained with `udistil distill --export-every-epoch`, which
# leaves EXP/epochs/epoch-NNN with the dev loss of that step.  Every EVERY-th epoch (default 1)
# and the last are decoded on DEV_CUTS (greedy, batch 8; a finished decode is kept), and
# EXP/learning_curve.tsv gets one row per decoded epoch: epoch, step, dev loss (label-free,
# on the teacher's pseudo-labels), dev WER (against DEV_CUTS' references).  Choose epochs on
# these, then decode the test set once with the chosen one.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,12p "$0" >&2; exit 2; }
run_dir=$1 exp=$2 dev=$3 every=${4:-1}
. "$(cd "$(dirname "$0")/.." && pwd)/path.sh"
cd "$run_dir"
epochs=($(ls -d "$exp"/epochs/epoch-[0-9][0-9][0-9] 2>/dev/null | sort))
[ ${#epochs[@]} -gt 0 ] || { echo "no $exp/epochs/epoch-NNN: train with --export-every-epoch" >&2; exit 1; }
for d in "${epochs[@]}"; do
  n=$((10#${d##*-}))
  if [ $((n % every)) -ne 0 ] && [ "$d" != "${epochs[-1]}" ]; then continue; fi
  udistil decode --model "$d" --batch-size 8 --beam 1 --in "$dev" --out "$exp/epochs/decode_dev/${d##*/}" \
    > "$exp/epochs/decode_dev_${d##*/}.log" 2>&1
done
python - "$exp" > "$exp/learning_curve.tsv" <<'PY'
import json, sys
from pathlib import Path
exp = Path(sys.argv[1])
print("epoch\tstep\tdev_loss\tdev_wer")
for decode in sorted((exp / "epochs" / "decode_dev").glob("epoch-*")):
    info = json.loads((exp / "epochs" / decode.name / "udistil_training.json").read_text())
    wer = json.loads((decode / "wer.json").read_text())["wer"]
    print(f"{info['epoch']}\t{info['step']}\t{info['dev_loss']:.4f}\t{wer:.1f}")
PY
cat "$exp/learning_curve.tsv"
