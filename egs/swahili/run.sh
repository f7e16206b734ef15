#!/usr/bin/env bash
# Swahili: train = Common Voice sw train + ALFFA train (+ FLEURS sw_ke train), whichever are
# given; dev = Common Voice sw dev, else FLEURS sw_ke dev, else whole speakers of ALFFA train;
# tests: Common Voice, FLEURS, ALFFA.  language=sw everywhere.
#
#   ./run.sh --cv-dir /data/cv-corpus-17.0-2024-03-15 --fleurs-dir /data/fleurs --alffa-dir /data/ALFFA_PUBLIC/ASR/SWAHILI/data
#   ./run.sh ... --test-sets "test_fleurs_sw test_alffa"     # only the sets you have
#   ./run.sh --alffa-dir /data/ALFFA_PUBLIC/ASR/SWAHILI/data --test-sets test_alffa   # ALFFA only
#   ./run.sh --help
set -euo pipefail

# Common Voice release directory holding sw/clips/*.mp3 and sw/{train,dev,test}.tsv.
cv_dir=
# FLEURS root holding the sw_ke config (lhotse's download or the google/fleurs layout).
fleurs_dir=
# ALFFA_PUBLIC/ASR/SWAHILI/data (train/ and test/ Kaldi dirs).
alffa_dir=
# Add FLEURS sw_ke train to the training set (true/false).
fleurs_in_train=false
# Dev set source: auto (CV dev, else FLEURS dev, else ALFFA), cv, fleurs or alffa (train speakers split off).
dev_from=auto
# Share of ALFFA train's utterances held by the dev speakers (--dev-from alffa), at least.
alffa_dev_fraction=0.05
# ALFFA: skip (one log line each, counted) recordings whose audio is missing or unreadable (true/false).
skip_bad_audio=true
# Processes reading audio headers in stage 1.
prep_num_jobs=4
recipe_options="cv_dir fleurs_dir alffa_dir fleurs_in_train dev_from alffa_dev_fraction skip_bad_audio prep_num_jobs"
. "$(dirname "${BASH_SOURCE[0]}")/../common/recipe.sh"

run_pipeline --manifest-prefix swahili --train-set train --dev-set dev \
  --test-sets "test_cv_sw test_fleurs_sw test_alffa"
