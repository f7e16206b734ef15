#!/usr/bin/env bash
# Compare stage-6 options for one student shape on a finished default run (stages 0-5 done).
#
#   benchmarks/student_options.sh RUN_DIR NAME FILTER [udistil distill options...]
#
# Trains exp_options/NAME on RUN_DIR/data/select/FILTER from RUN_DIR/exp/init_student_6-3,
# with run.sh's stage-6 settings except the options given (they come last, so they win),
# then decodes the English cuts of test_clean and appends one line to
# RUN_DIR/exp_options/results.txt: the options, the best dev loss (label-free: choose on this)
# and the English test_clean WER (report it; do not choose on it).  `--student DIR` among the
# options trains another initialisation (e.g. `udistil make-student ... --decoder-layer-ids
# 0,3,5`); the encoder cache is shared when its encoder and context are.  E.g. the learning-rate
# sweep behind run.sh's distill_lr:
#
#   for lr in 1e-4 2e-4 5e-4 1e-3; do
#     benchmarks/student_options.sh /path/to/run lr$lr none --lr $lr
#   done
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,17p "$0" >&2; exit 2; }
run_dir=$1 name=$2 filter=$3
shift 3
. "$(cd "$(dirname "$0")/.." && pwd)/path.sh"
cd "$run_dir"
exp=exp_options/$name
mkdir -p "$exp"
english=exp_options/cuts_test_clean_en.jsonl.gz
[ -s $english ] || python -c "
from udistil.data.manifests import read_cuts, write_cuts
write_cuts([c for c in read_cuts('data/cuts_test_clean.jsonl.gz') if c.supervisions[0].language == 'en'], '$english')"
udistil distill --teacher exp/models/teacher --student exp/init_student_6-3 \
  --train data/select/$filter/cuts.jsonl.gz --dev exp/teacher/cuts_dev.jsonl.gz --exp "$exp" \
  --batch-size 8 --num-epochs 6 --lr 2e-4 --warmup-steps 10 --valid-every 30 --max-dev-cuts 16 \
  --encoder-cache exp/encoder_cache --checkpoint-every 1000 --alpha-ce 0.8 --alpha-kl 1.0 \
  --alpha-mse 1.0 --temperature 2.0 --freeze-embeddings --device cpu --resume "$@" > "$exp/distill.log" 2>&1
udistil decode --model "$exp/best" --batch-size 8 --beam 1 --in $english --out "$exp/decode_test_clean_en" \
  > "$exp/decode.log" 2>&1
python - "$exp" "$filter" "$*" >> exp_options/results.txt <<'EOF'
import json, sys
exp, filt, opts = sys.argv[1:]
wer = json.load(open(f"{exp}/decode_test_clean_en/wer.json"))["wer"]
summary = json.load(open(f"{exp}/training_summary.json"))
print(f"{exp}\tfilter={filt}\t{opts}\tsteps={summary['steps']}\tbest_dev_loss={summary['best_dev_loss']:.3f}"
      f"\ten_test_clean_wer={wer:.1f}")
EOF
tail -n 1 exp_options/results.txt
