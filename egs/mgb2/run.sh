#!/usr/bin/env bash
# MGB-2 (Arabic broadcast news): teacher pseudo-labels for train (its captions are not used
# by any label-free filter), dev for the student's dev loss, test scored with references.
#
#   ./run.sh --mgb2-dir /data/mgb2                     # every stage
#   ./run.sh --mgb2-dir /data/mgb2 --stage 1 --stop-stage 2 --nj 64
#   cmd_backend=slurm ./run.sh --mgb2-dir /data/mgb2 --nj 64   # shards on Slurm (conf/slurm.conf)
#   ./run.sh --help
set -euo pipefail

# The unpacked MGB-2 release (train/, dev/, test/; layout in README.md).
mgb2_dir=
# Train: keep segments whose caption alignment WMER is at most this ("none": keep all).
mer_thresh=80
# Skip (one log line each, counted) recordings whose wav is missing or unreadable (true/false).
skip_bad_audio=true
recipe_options="mgb2_dir mer_thresh skip_bad_audio"
. "$(dirname "${BASH_SOURCE[0]}")/../common/recipe.sh"

run_pipeline --manifest-prefix mgb2 --train-set train --dev-set dev --test-sets "test_mgb2"
