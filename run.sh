#!/usr/bin/env bash
# udistil: label-free distillation of Whisper (uDistil-Whisper), generic staged pipeline.
#
# With no options this installs what is missing and runs every stage on the embedded
# offline mini corpus (espeak-ng speech in Arabic, Swahili and English).  Per-corpus
# recipes under egs/ call this script with their own options (ESPnet's asr.sh habit).
#
#   ./run.sh                              # everything, mini corpus
#   ./run.sh --stage 3 --stop-stage 3     # one stage
#   ./run.sh --teacher openai/whisper-large-v2 --nj 64    # another teacher, more shards
#   ./run.sh --help                       # every option with its current value
#
# All outputs go under the current directory: data/ (manifests, regenerable) and exp/
# (models, labels, scores, decodes, logs).  A finished stage leaves a marker and is
# skipped when re-run; a killed stage resumes without redoing finished shards.
set -euo pipefail

udistil_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# First stage to run.
stage=0
# Last stage to run.
stop_stage=8
# Parallel shards for stages 3, 4 and 7 (JOB=1:nj through $decode_cmd).
nj=2
# Teacher: hub id, local transformers dir, or packaged:whisper-base / packaged:whisper-tiny.en.
teacher=packaged:whisper-base
# Batch size for teacher decoding.
batch_size=8
# Beam size for teacher decoding (1 = greedy).
beam=1
# Stage 1: "mini" synthesises the embedded corpus; otherwise a script run as
# `bash $corpus_prep data/manifests` (with train_set, dev_set, test_sets exported) that writes
# data/manifests/${manifest_prefix}_{recordings,supervisions}_<set>.jsonl.gz for every set.
corpus_prep=mini
# Prefix of the stage-1 manifests (lhotse's habit: mgb2_recordings_train.jsonl.gz).
manifest_prefix=mini
# Unlabelled training set name (its references, if any, are used for evaluation only).
train_set=train
# Development set name.
dev_set=dev
# Test set names (space separated).
test_sets="test_clean test_noisy"
# Mini corpus: training cuts to synthesise.
mini_train_size=240
# Mini corpus: dev cuts.
mini_dev_size=40
# Mini corpus: cuts in each test set.
mini_test_size=40
# Mini corpus: random seed.
mini_seed=1234
# Skip tools/install.sh (when you manage the environment yourself).
skip_install=false

. "$udistil_root/utils/parse_options.sh"

log() { echo -e "$(date '+%F %T') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
stage_on() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if [ "$skip_install" != true ]; then
  "$udistil_root/tools/install.sh"
fi
. "$udistil_root/path.sh"
. "$udistil_root/cmd.sh"

mkdir -p exp/log
# Parallel local jobs share the cores; more torch threads than cores only thrash.
threads_per_job=$(( $(nproc) / nj )); [ "$threads_per_job" -ge 1 ] || threads_per_job=1
teacher_dir=exp/models/teacher
declare -A stage_seconds=()
timed() { local s=$1; shift; local t0=$SECONDS; "$@"; stage_seconds[$s]=$((SECONDS - t0)); }

stage0() {
  log "Stage 0: teacher $teacher -> $teacher_dir"
  udistil prepare-model "$teacher" "$teacher_dir"
}

stage1() {
  log "Stage 1: corpus preparation ($corpus_prep)"
  if [ -f data/manifests/.done ]; then log "  data/manifests/.done exists, skipping"; return 0; fi
  if [ "$corpus_prep" = mini ]; then
    udistil prepare-mini-corpus --out-dir data/manifests --seed "$mini_seed" \
      --num-train "$mini_train_size" --num-dev "$mini_dev_size" --num-test "$mini_test_size"
  else
    train_set=$train_set dev_set=$dev_set test_sets=$test_sets manifest_prefix=$manifest_prefix \
      bash "$corpus_prep" data/manifests
  fi
  touch data/manifests/.done
}

stage2() {
  log "Stage 2: cuts at 16 kHz, <= 30 s, validated"
  for part in $train_set $dev_set $test_sets; do
    [ -s data/cuts_$part.jsonl.gz ] && { log "  data/cuts_$part.jsonl.gz exists, skipping"; continue; }
    udistil prepare-cuts \
      --recordings data/manifests/${manifest_prefix}_recordings_$part.jsonl.gz \
      --supervisions data/manifests/${manifest_prefix}_supervisions_$part.jsonl.gz \
      --out data/cuts_$part.jsonl.gz
  done
}

# Pseudo-label one CutSet in nj shards; finished shards are skipped, a killed shard resumes.
pseudo_label_set() {
  local in=$1 out=$2 dir=$3
  [ -s "$out" ] && { log "  $out exists, skipping"; return 0; }
  udistil split-cuts --in "$in" --nj "$nj" --out-dir "$dir/split$nj"
  $decode_cmd JOB=1:$nj "$dir/log/pseudo_label.JOB.log" \
    udistil pseudo-label --model "$teacher_dir" --batch-size "$batch_size" --beam "$beam" \
      --num-threads "$threads_per_job" \
      --in "$dir/split$nj/cuts.JOB.jsonl.gz" --out "$dir/shards/cuts.JOB.jsonl.gz"
  udistil merge-cuts --out "$out" $(for j in $(seq "$nj"); do echo "$dir/shards/cuts.$j.jsonl.gz"; done)
}

stage3() {
  log "Stage 3: teacher pseudo-labels for $train_set and $dev_set (nj=$nj)"
  pseudo_label_set data/cuts_$train_set.jsonl.gz exp/teacher/cuts_$train_set.jsonl.gz exp/teacher/$train_set
  pseudo_label_set data/cuts_$dev_set.jsonl.gz exp/teacher/cuts_$dev_set.jsonl.gz exp/teacher/$dev_set
}

decode_model() {
  local model=$1 dir=$2
  for part in $test_sets; do
    [ -s "$dir/decode_$part/wer.json" ] && { log "  $dir/decode_$part done, skipping"; continue; }
    udistil decode --model "$model" --batch-size "$batch_size" --beam "$beam" \
      --in data/cuts_$part.jsonl.gz --out "$dir/decode_$part"
  done
}

stage7() {
  log "Stage 7: decode test sets with the teacher"
  decode_model "$teacher_dir" exp/teacher
}

stage8() {
  log "Stage 8: summary"
  udistil summarize-decodes exp/teacher/decode_*
}

for s in 0 1 2 3 7 8; do
  if stage_on $s; then timed $s stage$s; fi
done

if [ ${#stage_seconds[@]} -gt 0 ]; then
  log "wall time per stage (s):"
  for s in $(echo "${!stage_seconds[@]}" | tr ' ' '\n' | sort -n); do
    printf "  stage %s: %5d\n" "$s" "${stage_seconds[$s]}"
  done
fi
