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

# Internal variables are declared (not plain NAME=VALUE lines), so --help does not list them as options.
declare -r udistil_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The defaults the package owns (decoding, distillation: udistil/student/config.py and
# udistil/teacher/options.py), read from it so that stage 6 trains what `udistil distill`
# trains by default and --help shows the package's values.
declare -A default
eval "$(PYTHONPATH="$udistil_root" python3 -m udistil.defaults)"

# First stage to run.
stage=0
# Last stage to run.
stop_stage=8
# Parallel shards for stages 2, 3 and 4 (JOB=1:nj through the job runner, cmd.sh).
nj=2
# Teacher: hub id, local transformers dir, or packaged:whisper-base / packaged:whisper-tiny.en.
teacher=packaged:whisper-base
# Batch size for teacher decoding.
batch_size=${default[decode.batch_size]}
# Beam size for teacher decoding (1 = greedy).
beam=${default[decode.beam]}
# Beam size for stage 3's pseudo-labels alone ("" = --beam): labels from a wider search than the
# test decodes (sequence-level distillation; egs/ammi/README.md has its figures).
label_beam=
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
# Mini corpus: training cuts to synthesise (320 chosen over 160 on the two dev rulers,
# docs/experiments.md; past 160 English clips some sentences are said twice, in other voices).
mini_train_size=320
# Mini corpus: dev cuts.
mini_dev_size=40
# Mini corpus: cuts in each test set.
mini_test_size=40
# Mini corpus: random seed.
mini_seed=1234
# Stage 4: label-free filters to score (fusion and, with references, oracle_wer always follow).
# consistency, pesq and proxy_wer cost more than they earn on the mini corpus (docs/filters.md);
# add them back by name (the egs/ recipes for real speech keep proxy_wer, with the paper's proxy).
filters="confidence entropy nll nll_sum worst_window tail_nll entropy_window word_nll language_confidence hallucination"
# Stage 4: proxy ASR for proxy_wer (the paper: facebook/seamless-m4t-v2-large).
proxy=packaged:whisper-tiny.en
# Stage 5: fraction kept by filters that have no natural threshold (nll_sum, sonar_sim, word_nll, ...).
select_keep_fraction=${default[select.fallback_keep_fraction]}
# Stage 5: per-filter thresholds overriding the filters' defaults, e.g. "oracle_wer:80 proxy_wer:80".
select_thresholds=""
# Stage 6: students as encoder-decoder layer counts kept from the teacher (e.g. "32-16 16-16").
# The default keeps the teacher's whole encoder (frozen: training is decoder-only, from a cache
# of its outputs) and 3 of its 6 decoder layers: 3/4 of the teacher's layers, the paper's largest
# student ratio (docs/training.md says why).
students="6-3"
# Stage 6: the students' audio context: clip (the clip plus a margin; several times faster on
# short clips, learnt by distillation from the full-context teacher) or full (Whisper's 30 s).
student_context=clip
# Stage 6: selected sets (stage 5) to train one student each on (none = no filter).
train_filters="none fusion oracle_wer"
# Stage 7: also decode each student's untrained initialisation (RESULTS.md then shows what
# training changed); a full decode of the test sets per student shape.
decode_init=true
# Stage 7: end a transcript only where the model gives end of text at least this probability
# (0 = off, Whisper's rule; docs/training.md: the students' early ends on recorded speech).
decode_min_eot_prob=${default[decode.min_eot_prob]}
# Stages 3-7: rounds of self-training (round R > 1 relabels with a round R-1 student, in exp/roundR/).
rounds=1
# Rounds above 1: the filter whose student (of the first shape in students) labels the next round.
next_teacher=fusion
# Stage 6 (distillation): every default below is `udistil distill`'s, chosen on dev as
# docs/experiments.md records.

# Stage 6: epochs per student over its selected set.
distill_epochs=${default[optim.num_epochs]}
# Stage 6: optimiser steps per student, overriding distill_epochs when set.
distill_steps=${default[optim.max_steps]}
# Stage 6: batch size (cuts) for distillation.
distill_batch_size=${default[data.batch_size]}
# Stage 6: dev cuts for the (label-free) dev loss; a dev pass is costly on a CPU (0 = all).
distill_dev_cuts=${default[run.max_dev_cuts]}
# Stage 6: peak learning rate.
distill_lr=${default[optim.lr]}
# Stage 6: decay of the moving average of each student's weights that its dev loss and best/
# use (icefall's averaged model; 0 = off).
distill_average_decay=${default[optim.average_decay]}
# Stage 6: warm-up steps.
distill_warmup=${default[optim.warmup_steps]}
# Stage 6: steps between dev losses (the best student by dev loss is kept).
distill_valid_every=${default[run.valid_every]}
# Stage 6: weight of the pseudo-label CE in alpha_ce * CE + alpha_kl * T^2 * KL + alpha_mse * MSE.
alpha_ce=${default[loss.alpha_ce]}
# Stage 6: weight of the KL to the teacher.
alpha_kl=${default[loss.alpha_kl]}
# Stages 3 and 6: temperature of the stored teacher distributions and of the KL.
temperature=${default[loss.temperature]}
# Stage 6: weight of the MSE between the student's and the teacher's last decoder states (0 = off;
# stage 3 stores the teacher's states only when this is above 0).
alpha_mse=${default[loss.alpha_mse]}
# Stage 6: top encoder layers each student trains, the rest frozen (its cache then holds the
# frozen bottom's states; 0 = frozen; "" = the package's rule: frozen when the student keeps
# every teacher encoder layer, else all trained).  2 trained layers lost to a frozen encoder
# on the mini corpus's dev rulers (docs/experiments.md).
train_encoder_layers=${default[run.train_encoder_layers]}
# Stage 6: SpecAugment on what the student alone reads (true/false).
spec_augment=${default[augment.spec_augment]}
# Stage 6: weight each cut's loss by 1 - score/100 of this filter (e.g. fusion; "" = unweighted).
weight_by=${default[loss.weight_by]}
# Stage 6: extra options for `udistil distill` (e.g. "--train-embeddings --schedule cosine").
distill_opts=""
# GPUs and clusters (docs/clusters.md; the CUDA path has not yet run on a GPU).  What each kind
# of job asks for (GPUs, threads, memory, time) is in conf/jobs.conf.
# Stages 3, 4, 6 and 7: where models run: auto (cuda when a GPU is visible, else cpu), cpu or cuda.
device=auto
# Stages 3, 4 and 7: model precision: auto (float16 on cuda, float32 on cpu), float32, float16, bfloat16.
dtype=auto
# Locally a job gets N visible GPUs of its own (none visible: ignored); --device cpu asks for none.
# Stages 3, 4 and 7: GPUs each job asks the job runner for ("" = conf/jobs.conf's).
decode_gpus=""
# Stage 6: GPUs per node for each student ("" = conf/jobs.conf's); above 1, torchrun, one process per GPU.
distill_gpus=""
# Stage 6: nodes per student; above 1, utils/torchrun_slurm.sh starts torchrun on each (cmd_backend=slurm).
distill_nodes=1
# Stages 3, 4 and 7: redo outputs whose fingerprint (input, model, options) no longer matches,
# instead of stopping with a message that names them.
redo_stale=false
# Skip tools/install.sh (when you manage the environment yourself).
skip_install=false

# The command RESULTS.md records: the recipe's, as typed, when a recipe under egs/ called this.
declare run_command="${UDISTIL_RECIPE_COMMAND:-$(printf '%q ' "$0" "$@")}"
. "$udistil_root/utils/parse_options.sh"

log() { echo -e "$(date '+%F %T') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
stage_on() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if [ "$skip_install" != true ]; then
  "$udistil_root/tools/install.sh"
fi
. "$udistil_root/path.sh"
. "$udistil_root/cmd.sh"

for n in decode_gpus distill_gpus distill_nodes; do
  # The GPU counts may be left empty (conf/jobs.conf's).
  [[ ${!n} =~ ^[0-9]+$ ]] || { [ -z "${!n}" ] && [ "$n" != distill_nodes ]; } || \
    { echo "run.sh: --${n//_/-} must be a whole number, not '${!n}'" >&2; exit 1; }
done
[ "$distill_nodes" -ge 1 ] || { echo "run.sh: --distill-nodes must be at least 1" >&2; exit 1; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds must be a whole number from 1, not '$rounds'" >&2; exit 1; }

mkdir -p exp/log
redo_opt=""; [ "$redo_stale" = true ] && redo_opt="--redo-stale"
# Where models run (the same for every stage that runs one), and the job runner's GPU request
# (a runner that sees no GPU ignores it, so a CPU run is unchanged).
device_opts=(--device "$device" --dtype "$dtype")
# The model stages' GPU request: conf/jobs.conf's unless --decode-gpus says otherwise; none
# with --device cpu.  (Threads are not passed: each job takes its allocation's, cmd.sh.)
decode_gpu_opts=()
if [ "$device" = cpu ]; then decode_gpu_opts=(--gpu 0)
elif [ -n "$decode_gpus" ]; then decode_gpu_opts=(--gpu "$decode_gpus"); fi
[ "$device" = cpu ] && distill_gpus=0
distill_gpus=${distill_gpus:-$(job_request train gpu)}; distill_gpus=${distill_gpus:-0}
teacher_dir=exp/models/teacher
# What a self-training round reads and writes (enter_round sets them): round 1 is today's run,
# labelled by the teacher, with its selections in data/select; a later round keeps everything
# of its own under its directory, so rounds never overwrite each other.
round=1 round_dir=exp labeller=$teacher_dir select_dir=data/select round_note=""
# The teacher, the students' initialisations and the encoder cache are shared by every round.
declare -a stage_runs=()
declare -A stage_seconds=()
timed() { local s=$1; shift; local t0=$SECONDS; "$@"; stage_runs+=("$s"); stage_seconds[$s]=$((SECONDS - t0)); }
# student_dir ROUND_DIR SHAPE FILTER: where stage 6 trains a student (its model: .../best).
student_dir() { echo "$1/student_${2}_$3"; }

stage0() {
  log "Stage 0: teacher $teacher -> $teacher_dir"
  # Every model later stages load (teacher, proxy, SONAR, TTS), checked now: one message lists what is missing.
  udistil check-models --teacher "$teacher" --filters "$filters" --proxy "$proxy"
  udistil prepare-model "$teacher" "$teacher_dir"
}

stage1() {
  log "Stage 1: corpus preparation ($corpus_prep)"
  # The marker records the options that shape the corpus; other options stop (or redo) the stage.
  local marker_opts=(corpus_prep="$corpus_prep" train_set="$train_set" dev_set="$dev_set"
    test_sets="$test_sets" manifest_prefix="$manifest_prefix")
  if [ "$corpus_prep" = mini ]; then
    # plan: what the package would draw (sentences, languages, voices, noise), so a corpus made
    # by another version of the mini corpus is found stale, not silently kept.
    local plan
    plan=$(udistil prepare-mini-corpus --print-plan-fingerprint --seed "$mini_seed" \
      --num-train "$mini_train_size" --num-dev "$mini_dev_size" --num-test "$mini_test_size")
    marker_opts+=(seed="$mini_seed" train="$mini_train_size" dev="$mini_dev_size" test="$mini_test_size"
      plan="$plan")
  else
    marker_opts+=(--input "$corpus_prep")
  fi
  local rc=0
  udistil stage-marker check data/manifests/.done $redo_opt "${marker_opts[@]}" || rc=$?
  if [ $rc -eq 0 ]; then log "  data/manifests/.done matches these options, skipping"; return 0; fi
  [ $rc -eq 3 ] || return 1
  # A job, like every step that reads or writes all the audio (under Slurm, not the login
  # node); its log is echoed here, so what it skipped (one line per file) is on the console.
  local prep_log=data/log/corpus_prep.log rc=0
  mkdir -p data/log
  if [ "$corpus_prep" = mini ]; then
    $prepare_cmd $prep_log udistil prepare-mini-corpus --out-dir data/manifests --seed "$mini_seed" \
      --num-train "$mini_train_size" --num-dev "$mini_dev_size" --num-test "$mini_test_size" || rc=$?
  else
    train_set=$train_set dev_set=$dev_set test_sets=$test_sets manifest_prefix=$manifest_prefix \
      $prepare_cmd $prep_log bash "$corpus_prep" data/manifests || rc=$?
  fi
  if [ $rc -ne 0 ]; then
    grep -v '^# ' $prep_log >&2 || true
    log "Stage 1 failed (log: $prep_log)" >&2; return 1
  fi
  grep -v '^# \|^#$' $prep_log || true
  # Marked done only with every set's manifests there (a Slurm dry run writes none).
  local set kind
  for set in $train_set $dev_set $test_sets; do
    for kind in recordings supervisions; do
      if [ ! -s data/manifests/${manifest_prefix}_${kind}_$set.jsonl.gz ]; then
        log "Stage 1: no data/manifests/${manifest_prefix}_${kind}_$set.jsonl.gz after $prep_log; not marked done" >&2
        return 1
      fi
    done
  done
  udistil stage-marker write data/manifests/.done "${marker_opts[@]}"
}

stage2() {
  log "Stage 2: cuts at 16 kHz, <= 30 s, validated (nj=$nj)"
  local part rc j todo=() jobs="" pids=() seen=" "
  for part in $train_set $dev_set $test_sets; do
    # A set named twice (an evaluation recipe's train and dev name its test set) is made once:
    # two jobs writing one shard, or two merges of one set, would race.
    case $seen in *" $part "*) continue ;; esac
    seen+="$part "
    # Skipped only when made from these very stage-1 manifests (the marker holds their hashes).
    rc=0
    udistil stage-marker check data/.cuts_$part.done $redo_opt $(stage2_inputs $part) || rc=$?
    if [ $rc -eq 0 ] && [ -s data/cuts_$part.jsonl.gz ]; then
      log "  data/cuts_$part.jsonl.gz exists, skipping"; continue
    fi
    [ $rc -eq 0 ] || [ $rc -eq 3 ] || return 1
    todo+=("$part")
    # nj jobs per set, each reading the audio of one block of recordings; a finished shard is
    # kept, so a killed stage 2 redoes only the rest.
    for j in $(seq "$nj"); do
      jobs+=$(job_line data/log/prepare_cuts_$part.$j.log \
        udistil prepare-cuts --shard $j/$nj --mono-dir data/wav_mono16k \
          --recordings data/manifests/${manifest_prefix}_recordings_$part.jsonl.gz \
          --supervisions data/manifests/${manifest_prefix}_supervisions_$part.jsonl.gz \
          --out data/cuts_$part.shards/cuts.$j.jsonl.gz)$'\n'
    done
  done
  # Every set's shards in one submission (they start together; the runner shares the cores),
  # then the merges side by side: each gives the cuts an unsharded run would.
  submit_each prepare_cuts $prepare_cmd <<< "${jobs%$'\n'}"
  for part in "${todo[@]}"; do
    { udistil prepare-cuts --merge $(for j in $(seq "$nj"); do echo "data/cuts_$part.shards/cuts.$j.jsonl.gz"; done) \
        --recordings data/manifests/${manifest_prefix}_recordings_$part.jsonl.gz --out data/cuts_$part.jsonl.gz &&
      udistil stage-marker write data/.cuts_$part.done $(stage2_inputs $part); } &
    pids+=($!)
  done
  wait_all "${pids[@]}"
}
# wait_all PID...: wait for every background PID; fails if any of them failed.
wait_all() { local pid failed=0; for pid; do wait "$pid" || failed=1; done; return $failed; }
# The stage-1 manifests a set's cuts are made from (what its stage-2 marker hashes).
stage2_inputs() {
  echo --input data/manifests/${manifest_prefix}_recordings_$1.jsonl.gz \
    --input data/manifests/${manifest_prefix}_supervisions_$1.jsonl.gz
}

# Pseudo-label one CutSet in nj shards; finished shards are skipped, a killed shard resumes.
# No skip here on "$out exists": split, shards and merge each check their fingerprint, so a
# rerun with another teacher, --beam, --label-beam or input stops (or redoes, --redo-stale true)
# instead.
pseudo_label_set() {
  local in=$1 out=$2 dir=$3
  udistil split-cuts --in "$in" --nj "$nj" --out-dir "$dir/split$nj"
  $label_cmd "${decode_gpu_opts[@]}" JOB=1:$nj "$dir/log/pseudo_label.JOB.log" \
    udistil pseudo-label --model "$labeller" --batch-size "$batch_size" --beam "${label_beam:-$beam}" \
      "${device_opts[@]}" $redo_opt \
      --targets-dir "$dir/targets" --targets-temperature "$temperature" --targets-alpha-mse "$alpha_mse" \
      --in "$dir/split$nj/cuts.JOB.jsonl.gz" --out "$dir/shards/cuts.JOB.jsonl.gz"
  udistil merge-cuts --out "$out" $(for j in $(seq "$nj"); do echo "$dir/shards/cuts.$j.jsonl.gz"; done)
}

stage3() {
  # Each clip is decoded alone; the teacher's distillation targets (top-k distributions at the
  # training temperature) are kept from the same pass, so stage 6 never runs the teacher.
  log "Stage 3$round_note: teacher pseudo-labels and distillation targets for $train_set and $dev_set (nj=$nj)"
  pseudo_label_set data/cuts_$train_set.jsonl.gz $round_dir/teacher/cuts_$train_set.jsonl.gz $round_dir/teacher/$train_set
  pseudo_label_set data/cuts_$dev_set.jsonl.gz $round_dir/teacher/cuts_$dev_set.jsonl.gz $round_dir/teacher/$dev_set
}

# What each filter needs comes from the package (`udistil score --list`), never from a list here:
# filters that run a model are sharded like stage 3; the others (statistics only) share one
# pass; oracle_wer runs when the set has references; whole-set ones (fusion) run last.
# Every output checks its fingerprint, so finished, current work is skipped and stale work stops.
# Asked once per run (outside a subshell, so the answer is kept).
load_filter_table() { [ -n "${filter_table:-}" ] || filter_table=$(udistil score --list); }
# filter_field NAME COLUMN: one fact about one filter (columns as in `udistil score --list`).
filter_field() {
  echo "$filter_table" | awk -F'\t' -v f="$1" -v c="$2" '
    /^#/ { for (i = 1; i <= NF; i++) col[(i == 1 ? substr($i, 2) : $i)] = i; next }
    $1 == f { print $col[c]; found = 1 } END { if (!found) exit 1 }' \
    || { echo "run.sh: unknown filter '$1' (udistil score --list shows them)" >&2; return 1; }
}
# scored_filters light|model: the label-free per-cut filters of $filters that run no model, or
# that run one (whole-set ones, fusion, come last; oracle_wer is not label-free).
scored_filters() {
  local f kind
  for f in $filters; do
    if [ "$(filter_field "$f" label_free)" = no ] || [ "$(filter_field "$f" whole_set)" = yes ]; then continue; fi
    case ,$(filter_field "$f" needs), in *,model,*) kind=model ;; *) kind=light ;; esac
    [ "$kind" = "$1" ] && echo "$f"
  done
  return 0
}
# score_light IN DIR: the statistics-only filters (one pass) and oracle_wer (when the set has
# references) on IN; the path of the last output goes to DIR/chain_end.  Light (no model, no
# audio): run for both sets side by side.
score_light() {
  local in=$1 dir=$2 cur=$1 cheap
  mkdir -p "$dir/log"
  cheap=$(scored_filters light | paste -sd, -)
  if [ -n "$cheap" ]; then
    udistil score "$cheap" $redo_opt --in "$cur" --out "$dir/teacher_stats.jsonl.gz" > "$dir/log/score_teacher_stats.log" 2>&1 \
      || { tail -n 5 "$dir/log/score_teacher_stats.log" >&2; return 1; }
    cur=$dir/teacher_stats.jsonl.gz
  fi
  # The supervised baseline needs ground truth; udistil refuses (and says why) without it.
  if udistil score oracle_wer $redo_opt --in "$cur" --out "$dir/oracle_wer.jsonl.gz" > "$dir/log/score_oracle_wer.log" 2>&1; then
    cur=$dir/oracle_wer.jsonl.gz
  else
    log "  $dir: oracle_wer not scored: $(tail -n 1 "$dir/log/score_oracle_wer.log")"
  fi
  echo "$cur" > "$dir/chain_end"
}
# score_models DIR: the filters that run a model, sharded like stage 3, after score_light.
score_models() {
  local dir=$1 cur f
  cur=$(cat "$dir/chain_end")
  for f in $(scored_filters model); do
    udistil split-cuts --in "$cur" --nj "$nj" --out-dir "$dir/$f/split$nj"
    $score_cmd "${decode_gpu_opts[@]}" JOB=1:$nj "$dir/log/score_$f.JOB.log" \
      udistil score "$f" --proxy "$proxy" --model "$labeller" \
        "${device_opts[@]}" $redo_opt \
        --in "$dir/$f/split$nj/cuts.JOB.jsonl.gz" --out "$dir/$f/shards/cuts.JOB.jsonl.gz"
    udistil merge-cuts --out "$dir/$f.jsonl.gz" $(for j in $(seq "$nj"); do echo "$dir/$f/shards/cuts.$j.jsonl.gz"; done)
    cur=$dir/$f.jsonl.gz
  done
  echo "$cur" > "$dir/chain_end"
}

stage4() {
  log "Stage 4$round_note: filter scores ($filters, oracle_wer if labelled, fusion) for $train_set and $dev_set"
  local set pids=() calibration=$round_dir/scores/fusion_calibration.json jobs=""
  load_filter_table
  for set in $dev_set $train_set; do
    score_light $round_dir/teacher/cuts_$set.jsonl.gz $round_dir/scores/$set & pids+=($!)
  done
  wait_all "${pids[@]}" || return 1
  for set in $dev_set $train_set; do score_models $round_dir/scores/$set; done
  # Fusion reads whole sets.  The dev set, with references, calibrates it (each round refits it
  # on its own dev labels); it is then applied label-free to both sets, as two jobs at once.
  if $misc_cmd $round_dir/scores/$dev_set/log/fit_fusion.log \
      udistil fit-fusion --dev "$(cat $round_dir/scores/$dev_set/chain_end)" --out "$calibration" 2>/dev/null; then
    grep -v " INFO \|^#" $round_dir/scores/$dev_set/log/fit_fusion.log | sed 's/^/  fusion calibration: /' || true
  else
    log "  fusion left uncalibrated (label-free agreement weights): $(grep -v '^#' $round_dir/scores/$dev_set/log/fit_fusion.log | tail -n 1)"
    rm -f "$calibration"; calibration=""
  fi
  for set in $dev_set $train_set; do
    jobs+=$(job_line $round_dir/scores/$set/log/score_fusion.log \
      udistil score fusion $redo_opt ${calibration:+--calibration "$calibration"} \
        --in "$(cat $round_dir/scores/$set/chain_end)" --out $round_dir/scores/cuts_$set.jsonl.gz)$'\n'
  done
  submit_each score_fusion $misc_cmd <<< "${jobs%$'\n'}"
  grep -h "family weights\|calibrated on" $round_dir/scores/$dev_set/log/score_fusion.log | sed 's/^.*fusion/  fusion/' || true
}

stage5() {
  log "Stage 5$round_note: one training subset per filter under $select_dir/"
  # One process for every subset (process start-up dominated this stage). No skip here:
  # `udistil select` keeps a subset made from the same scores with the same rule (its
  # fingerprint) and redoes one whose scores or rule changed. Each filter's rule: its entry in
  # select_thresholds, else its own default threshold, else select_keep_fraction. A filter
  # that keeps nothing (or oracle_wer without references) is reported; students skip it.
  $misc_cmd $round_dir/log/select.log \
    udistil select --filters "none $filters fusion oracle_wer" --thresholds "$select_thresholds" \
      --fallback-keep-fraction "$select_keep_fraction" \
      --in $round_dir/scores/cuts_$train_set.jsonl.gz --out-dir "$select_dir"
  grep -v '^#' $round_dir/log/select.log || true
}

# submit_each NAME RUNNER...: one job per line of stdin ("LOG<TAB>command as shell words"), all
# in one call of the runner, so they start together and the runner alone decides how many run
# at once (and shares the cores among them).  Each command goes in a script under
# exp/jobs/NAME.<hash of every line>/ (a changed list never matches an old finished log) and
# its log is written at LOG (through a symlink there).
submit_each() {
  local name=$1 lines=() line log dir hash n=0
  shift
  mapfile -t lines < <(grep -v '^$' || true)
  [ ${#lines[@]} -gt 0 ] || return 0
  hash=$(printf '%s\n' "${lines[@]}" | sha1sum | cut -c1-10)
  dir=exp/jobs/$name.$hash
  mkdir -p "$dir/log"
  for line in "${lines[@]}"; do
    n=$((n + 1)); log=${line%%$'\t'*}
    printf '#!/usr/bin/env bash\nexec %s\n' "${line#*$'\t'}" > "$dir/$name.$n.sh"
    mkdir -p "$(dirname "$log")"
    ln -sfn "$PWD/$log" "$dir/log/$name.$n.log"
  done
  "$@" JOB=1:$n "$dir/log/$name.JOB.log" bash "$dir/$name.JOB.sh"
}
# job_line LOG WORDS...: one line for submit_each.
job_line() { local log=$1; shift; printf '%s\t%s\n' "$log" "$(printf '%q ' "$@")"; }

# How stage 6 starts `udistil distill`: the job runner's request (--gpu, --nodes: conf/slurm.conf
# maps them to sbatch options; the local runner gives each job --gpu N GPUs of its own and
# ignores --nodes) and the launcher: none for one process, torchrun for several GPUs on one
# node, utils/torchrun_slurm.sh for several nodes.
distill_launch() {
  runner_opts=(--gpu "$distill_gpus") launcher=()
  if [ "$distill_nodes" -gt 1 ]; then
    runner_opts+=(--nodes "$distill_nodes")
    launcher=(torchrun_slurm.sh --nnodes "$distill_nodes")
    [ "$distill_gpus" -gt 0 ] && launcher+=(--nproc-per-node "$distill_gpus")
    launcher+=(--)
  elif [ "$distill_gpus" -gt 1 ]; then
    launcher=(torchrun --standalone --nnodes 1 --nproc_per_node "$distill_gpus" --no-python)
  fi
  return 0
}

# Stage 6's pre-step: a frozen student encoder's outputs for the whole pool and the dev set, by
# nj jobs, before any student trains; every student (and every rank) sharing that encoder then
# only reads them.  Finished work is kept; a student whose encoder is trained stores nothing.
# A later round reads the same audio, so it finds its cuts' outputs already there.
encoder_cache_jobs() {
  local shape=$1
  $decode_cmd "${decode_gpu_opts[@]}" JOB=1:$nj exp/encoder_cache/log/${shape}.JOB.log \
    udistil encoder-cache --teacher "$teacher_dir" --student exp/init_student_${shape} \
      --in $round_dir/teacher/cuts_$train_set.jsonl.gz --in $round_dir/teacher/cuts_$dev_set.jsonl.gz \
      --shard JOB --num-shards "$nj" --cache exp/encoder_cache \
      ${train_encoder_layers:+--train-encoder-layers $train_encoder_layers} \
      --batch-size "$distill_batch_size" --device "$device"
}

stage6() {
  log "Stage 6$round_note: students ($students) distilled on: $train_filters"
  local shape f exp runner_opts launcher inits="" jobs="" labeller_opts=()
  distill_launch
  # Students of every round start from the same initialisation, made from the teacher (which
  # decides whether their encoder is frozen); a later round's targets are its labeller's.
  [ "$labeller" = "$teacher_dir" ] || labeller_opts=(--labeller "$labeller")
  [ ${#launcher[@]} -eq 0 ] || log "  each student: $distill_nodes node(s) x $distill_gpus GPU(s): ${launcher[*]}"
  for shape in $students; do
    [ -s exp/init_student_${shape}/config.json ] || inits+=$(job_line exp/log/make_student_${shape}.log \
      udistil make-student --teacher "$teacher_dir" --encoder-layers "${shape%-*}" \
        --decoder-layers "${shape#*-}" --audio-context "$student_context" --out exp/init_student_${shape})$'\n'
  done
  # The initialisations (each loads the teacher) as jobs, then every student at once.
  submit_each make_student $misc_cmd <<< "${inits%$'\n'}"
  for shape in $students; do encoder_cache_jobs "$shape"; done
  for shape in $students; do
    for f in $train_filters; do
      if [ ! -s $select_dir/$f/cuts.jsonl.gz ]; then log "  no $select_dir/$f: skipping"; continue; fi
      exp=$(student_dir $round_dir $shape $f)
      if grep -q '"finished": true' $exp/training_summary.json 2>/dev/null; then
        log "  $exp finished, skipping"; continue
      fi
      # --resume is safe on a fresh run and continues a killed (or preempted) one on the same
      # loss curve.
      jobs+=$(job_line $exp/log/distill.log \
        "${launcher[@]}" udistil distill --teacher "$teacher_dir" "${labeller_opts[@]}" \
          --student exp/init_student_${shape} \
          --train $select_dir/$f/cuts.jsonl.gz --dev $round_dir/teacher/cuts_$dev_set.jsonl.gz --exp $exp \
          --batch-size "$distill_batch_size" --num-epochs "$distill_epochs" \
          ${distill_steps:+--max-steps $distill_steps} --lr "$distill_lr" --average-decay "$distill_average_decay" \
          --warmup-steps "$distill_warmup" --valid-every "$distill_valid_every" \
          --encoder-cache exp/encoder_cache \
          --alpha-ce "$alpha_ce" --alpha-kl "$alpha_kl" --alpha-mse "$alpha_mse" \
          --temperature "$temperature" --max-dev-cuts "${distill_dev_cuts:-0}" \
          ${train_encoder_layers:+--train-encoder-layers $train_encoder_layers} \
          $([ "$spec_augment" = true ] && echo --spec-augment) ${weight_by:+--weight-by $weight_by} \
          --device "$device" --resume $distill_opts)$'\n'
    done
  done
  submit_each distill $train_cmd "${runner_opts[@]}" <<< "${jobs%$'\n'}"
}

# decode_jobs MODEL DIR: one job line per test set.  No skip here: `udistil decode` keeps a
# finished decode of the same model, input and options (its fingerprint) and stops on one made
# otherwise (--redo-stale true: redoes it).
decode_jobs() {
  local model=$1 dir=$2 part
  for part in $test_sets; do
    job_line "$dir/log/decode_$part.log" \
      udistil decode --model "$model" --batch-size "$batch_size" --beam "$beam" "${device_opts[@]}" \
        --min-eot-prob "$decode_min_eot_prob" $redo_opt --in data/cuts_$part.jsonl.gz --out "$dir/decode_$part"
  done
}

stage7() {
  local d jobs
  if [ "$round" -eq 1 ]; then
    log "Stage 7: decode test sets with the teacher, each student's initialisation and every student"
  else
    log "Stage 7$round_note: decode test sets with this round's students"
  fi
  jobs=$(
    # The teacher and the initialisations are the same in every round: decoded in round 1 only.
    if [ "$round" -eq 1 ]; then decode_jobs "$teacher_dir" exp/teacher; fi
    if [ "$round" -eq 1 ] && [ "$decode_init" = true ]; then
      for d in exp/init_student_*; do
        if [ -s "$d/config.json" ]; then decode_jobs "$d" "$d"; fi
      done
    fi
    # `if`, not `&&`: with no student (the glob left as is) the stage still succeeds.
    for d in $round_dir/student_*/best; do
      if [ -s "$d/config.json" ]; then decode_jobs "$d" "$(dirname "$d")"; fi
    done)
  # Every (model, test set) at once; the runner decides how many run together.
  submit_each decode $decode_cmd "${decode_gpu_opts[@]}" <<< "$jobs"
}

stage8() {
  log "Stage 8: filter-quality reports (exp/report: dev; exp/report_pool: the training pool) and RESULTS.md"
  # The pool's report needs its references (evaluation only; an unlabelled pool is skipped):
  # it says what each filter keeps of what the students learn from, and how wrong that is.
  local role out set jobs=""
  while IFS=$'\t' read -r role out; do
    case $role in dev) set=$dev_set ;; pool) set=$train_set ;; *) continue ;; esac
    [ -s exp/scores/cuts_$set.jsonl.gz ] || continue
    jobs+=$(job_line exp/log/filter_report_$set.log \
      udistil filter-report --skip-unlabelled --in exp/scores/cuts_$set.jsonl.gz --out "$out" \
        --teacher-logs "exp/teacher/*/shards/*.stats.json")$'\n'
  done < <(udistil report --exp exp --filter-report-dirs)
  # Both reports at once (each reads its whole set).
  submit_each filter_report $misc_cmd <<< "${jobs%$'\n'}"
  $misc_cmd exp/log/report.log udistil report --exp exp --out RESULTS.md --command "$run_command"
  udistil summarize-decodes exp/teacher/decode_* \
    $(for d in "${round_dirs[@]}"; do ls -d $d/student_*/decode_* 2>/dev/null; done)
}

# enter_round R: point stages 3-7 at round R.  Round R > 1 is labelled by a student of round
# R-1 (--next-teacher's filter, the first shape in --students) and stops, naming it, when that
# student was never trained (e.g. its filter selected nothing).
enter_round() {
  round=$1 round_dir=${round_dirs[$1 - 1]}
  [ "$round" -gt 1 ] || return 0
  local shapes=($students)
  labeller=$(student_dir ${round_dirs[$1 - 2]} ${shapes[0]} $next_teacher)/best
  select_dir=$round_dir/select round_note=" (round $round, teacher $labeller)"
  if [ ! -s "$labeller/config.json" ]; then
    log "Round $round: $labeller not found: round $((round - 1)) has no $next_teacher student of shape" \
      "${shapes[0]} to label it (${round_dirs[$1 - 2]}/log/select.log says what each filter kept);" \
      "choose another --next-teacher or fewer --rounds" >&2
    exit 1
  fi
}

# Each round's directory, from the package (which reads them back for RESULTS.md).
round_dirs=()
if [ "$stop_stage" -ge 3 ]; then
  round_list=$(udistil report --exp exp --round-dirs "$rounds")
  mapfile -t round_dirs <<< "$round_list"
fi
# Stages 0-2 once, then stages 3-7 for each round in turn (all of round 1 before round 2's
# labels, which come from round 1's student), then stage 8 over every round.
for s in 0 1 2; do
  if stage_on $s; then timed $s stage$s; fi
done
if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 3 ]; then
  for r in $(seq "$rounds"); do
    enter_round "$r"
    for s in 3 4 5 6 7; do
      key=$s; [ "$r" -eq 1 ] || key="$s, round $r"
      if stage_on $s; then timed "$key" stage$s; fi
    done
  done
fi
if stage_on 8; then timed 8 stage8; fi

if [ ${#stage_runs[@]} -gt 0 ]; then
  log "wall time per stage (s):"
  for s in "${stage_runs[@]}"; do
    printf "  stage %s: %5d\n" "$s" "${stage_seconds[$s]}"
  done
fi
