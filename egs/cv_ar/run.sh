#!/usr/bin/env bash
# Common Voice Arabic (any release; the paper uses CV15): train pseudo-labelled by the
# teacher, dev for the student's dev loss, test scored with references.
#
#   ./run.sh --cv-dir /data/cv-corpus-15.0-2023-09-08
#   cmd_backend=slurm ./run.sh --cv-dir /data/cv-corpus-15.0-2023-09-08 --nj 64
#   ./run.sh --help
set -euo pipefail

# The Common Voice release directory holding ar/clips/*.mp3 and ar/{train,dev,test}.tsv.
cv_dir=
# Processes reading mp3 headers in stage 1.
cv_num_jobs=4
recipe_options="cv_dir cv_num_jobs"
. "$(dirname "${BASH_SOURCE[0]}")/../common/recipe.sh"

run_pipeline --manifest-prefix cv_ar --train-set train --dev-set dev --test-sets "test_cv"
