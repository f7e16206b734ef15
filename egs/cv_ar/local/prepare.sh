#!/usr/bin/env bash
# Stage 1 for Common Voice Arabic: <cv_dir>/ar/{clips/*.mp3,train.tsv,dev.tsv,test.tsv} -> manifests.
# Sets: train (train.tsv), dev (dev.tsv), test_cv (test.tsv).  Needs $cv_dir (--cv-dir).
# Prepared sets are skipped; delete data/manifests to redo them.
. "$(dirname "${BASH_SOURCE[0]}")/../../common/prepare_lib.sh"

for set in $(requested_sets); do
  case "$set" in
    train) split=train ;;
    dev) split=dev ;;
    test_cv) split=test ;;
    *) unknown_set "$set" train dev test_cv ;;
  esac
  if prepared "$set"; then log "set $set already prepared, skipping"; continue; fi
  need_dir "${cv_dir:-}" --cv-dir "the Common Voice release"
  log "Common Voice ar $split.tsv -> set $set"
  udistil prepare-common-voice --corpus-dir "$cv_dir" --language ar --split "$split" \
    --prefix "$prefix" --set "$set" --out-dir "$out_dir" --num-jobs "${cv_num_jobs:-1}"
done
