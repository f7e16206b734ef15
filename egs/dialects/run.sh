#!/usr/bin/env bash
# Arabic dialect evaluation (no training here): MGB-3 (Egyptian), MGB-5 (Moroccan), FLEURS
# ar_eg, and any labelled set given as a Kaldi data dir or a saved Hugging Face dataset
# (SADA, Casablanca, in-house sets).  Decode a student trained by another recipe on them:
#
#   ./run.sh --stage 1 --stop-stage 2 --fleurs-dir /data/fleurs --mgb3-dir /data/mgb3/test \
#       --hf-sets "test_sada=/data/sada_saved:test" --test-sets "test_fleurs_ar_eg test_mgb3 test_sada"
#   ./run.sh --stage 7 --stop-stage 8 --teacher ../mgb2/exp/student_32-16_proxy_wer/best ...
#   ./run.sh --help
set -euo pipefail

# MGB-3 Egyptian test as a Kaldi data dir (wav.scp, segments, text), e.g. from its Kaldi recipe.
mgb3_dir=
# MGB-5 Moroccan test as a Kaldi data dir.
mgb5_dir=
# FLEURS root holding the ar_eg config (lhotse's download or the google/fleurs layout).
fleurs_dir=
# More Kaldi data dirs: "set=dir set2=dir2" (set names start with test_).
kaldi_sets=
# Saved Hugging Face datasets: "set=dir[:split] ..." (datasets.load_from_disk).
hf_sets=
recipe_options="mgb3_dir mgb5_dir fleurs_dir kaldi_sets hf_sets"
. "$(dirname "${BASH_SOURCE[0]}")/../common/recipe.sh"

# run.sh needs train and dev set names; this recipe only evaluates (stages 1, 2, 7, 8), so
# both name the FLEURS test set, which is then prepared once.  Point them elsewhere
# (e.g. --train-set fleurs_ar_eg_train) only to pseudo-label here.
run_pipeline --manifest-prefix dialects --train-set test_fleurs_ar_eg --dev-set test_fleurs_ar_eg \
  --test-sets "test_mgb3 test_mgb5 test_fleurs_ar_eg"
