#!/usr/bin/env bash
# A finished default run's models on a larger set than stage 7's, with paired intervals.
#
#   benchmarks/larger_test.sh [--split test_clean|test_noisy|test_heldout|dev|dev_heldout|real] [--size N] [--seed S] [--language L] \
#       RUN_DIR [NAME=MODEL_DIR ...]
#
# The default mini test_clean holds 18 English clips (about 190 words): one error is half a
# WER point, and a few clips decide which student looks better.  This draws the mini corpus
# again with N cuts in the split (default 200: 90 English) and the run's seed (run.sh's
# mini_seed, default 1234), so the sentences are the run's test (or dev) sentences and the
# voices and noise those of the split; it refuses to go on if any of them says a sentence of the
# run's training cuts.  It then decodes the split's clips of language L (default en) with the
# teacher and the models given (default: every trained student, exp/student_*/best), with
# stage 7's options, and prints each model's WER beside the teacher's with a paired-bootstrap
# interval (benchmarks/paired_wer.py).  Choose settings on --split dev; report on test_clean
# (and test_noisy).  --split test_heldout is the English ruler of voices, rates, pitches and
# one-to-three-sentence clips that no other split uses (udistil/data/mini_corpus.py): it
# measures how far the students generalise beyond the corpus, and never chooses a setting:
# --split dev_heldout, its twin with dev sentences and other unseen voices, does.
# --split real takes language L's recorded clips from the real-speech folder that
# benchmarks/common.py reads (40 read English clips, for one) instead: speech unlike every
# synthetic split, a test, never a ruler to choose on.
# Output: RUN_DIR/exp_larger_<split>/{data,<name>/decode}/ and paired_wer.tsv.
set -euo pipefail
split=test_clean size=200 seed=1234 language=en
while [ $# -gt 0 ]; do
  case $1 in
    --split) split=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --language) language=$2; shift 2 ;;
    -h|--help) sed -n 2,23p "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { sed -n 2,23p "$0" >&2; exit 2; }
case $split in
  test_clean|test_noisy) sizes=(--num-dev 3 --num-test "$size") ;;
  test_heldout|dev_heldout) sizes=(--num-dev 3 --num-test 3 --num-heldout "$size") ;;
  dev) sizes=(--num-dev "$size" --num-test 3) ;;
  real) sizes=() ;;
  *) echo "$0: --split must be test_clean, test_noisy, test_heldout, dev, dev_heldout or real, not $split" >&2; exit 2 ;;
esac
run_dir=$1
shift
bench_dir=$(cd "$(dirname "$0")" && pwd)
. "$bench_dir/../path.sh"
cd "$run_dir"
work=exp_larger_$split
mkdir -p $work/data
export HF_HUB_OFFLINE=1
cuts=$work/data/cuts_${split}_$language.jsonl.gz
# A ruler drawn with another --size, --seed or --language is drawn again, never reused under
# the new name (its decodes are then redone: --redo-stale below).
ruler="split=$split size=$size seed=$seed language=$language"
if [ -s $cuts ] && [ "$(cat $work/data/ruler 2>/dev/null)" != "$ruler" ]; then
  echo "$work/data was drawn as '$(cat $work/data/ruler 2>/dev/null || echo unknown)'; drawing it again as '$ruler'"
  rm -rf $work/data
  mkdir -p $work/data
fi
if [ $split = real ] && [ ! -s $cuts ]; then
  python - "$bench_dir" "$language" $cuts <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from common import REAL_SPEECH, real_speech_cuts
from udistil.data.manifests import write_cuts
cuts = real_speech_cuts((sys.argv[2],))
if not cuts:
    sys.exit(f"no real-speech clips of language {sys.argv[2]!r} under {REAL_SPEECH}")
write_cuts(cuts, sys.argv[3])
print(f"{sys.argv[3]}: {len(cuts)} real {sys.argv[2]} clips from {REAL_SPEECH}")
EOF
fi
if [ ! -s $cuts ]; then
  udistil prepare-mini-corpus --out-dir $work/data/manifests --wav-dir $work/data/wav --seed "$seed" \
    --num-train 3 "${sizes[@]}"
  udistil prepare-cuts --recordings $work/data/manifests/mini_recordings_$split.jsonl.gz \
    --supervisions $work/data/manifests/mini_supervisions_$split.jsonl.gz --out $work/data/cuts_$split.jsonl.gz
  python - $work/data/cuts_$split.jsonl.gz data/cuts_train.jsonl.gz "$language" $cuts <<'EOF'
import re
import sys
from udistil.data.manifests import read_cuts, supervision, write_cuts
eval_path, train_path, language, out = sys.argv[1:]
# Clips say one to three sentences: a leak is any sentence of a clip said in training.
train_text = "\n".join(supervision(c).text for c in read_cuts(train_path))
cuts = [c for c in read_cuts(eval_path) if supervision(c).language == language]
leaked = [c.id for c in cuts
          if any(s in train_text for s in re.split(r"(?<=[.!?])\s+", supervision(c).text) if s)]
if leaked:
    sys.exit(f"{eval_path}: {len(leaked)} clips say a sentence of {train_path} (e.g. {leaked[0]}); "
             "is --seed the run's mini_seed?")
write_cuts(cuts, out)
print(f"{out}: {len(cuts)} {language} clips, none of whose sentences is in {train_path}")
EOF
fi
echo "$ruler" > $work/data/ruler
models=("teacher=exp/models/teacher" "$@")
if [ $# -eq 0 ]; then
  for d in exp/student_*/best; do
    if [ -s "$d/config.json" ]; then models+=("$(basename "$(dirname "$d")")=$d"); fi
  done
fi
decodes=()
for entry in "${models[@]}"; do
  name=${entry%%=*} model=${entry#*=}
  udistil decode --model "$model" --batch-size 8 --beam 1 --redo-stale --in $cuts --out $work/$name/decode \
    > $work/decode_$name.log 2>&1
  decodes+=("$name=$work/$name/decode")
done
python "$bench_dir/paired_wer.py" --baseline "${decodes[0]}" --language "$language" "${decodes[@]:1}" \
  | tee $work/paired_wer.tsv
