#!/usr/bin/env bash
# Stage 1 for MGB-2: the release's train XML + wav and dev/test Kaldi files -> manifests.
# Sets: train (MGB-2 train, WMER <= mer_thresh), dev (MGB-2 dev), test_mgb2 (MGB-2 test).
# Needs $mgb2_dir (--mgb2-dir); the layout is in ../README.md.  Prepared sets are skipped;
# delete data/manifests to redo them.
. "$(dirname "${BASH_SOURCE[0]}")/../../common/prepare_lib.sh"

for set in $(requested_sets); do
  case "$set" in
    train) part=train ;;
    dev) part=dev ;;
    test_mgb2) part=test ;;
    *) unknown_set "$set" train dev test_mgb2 ;;
  esac
  if prepared "$set"; then log "set $set already prepared, skipping"; continue; fi
  need_dir "${mgb2_dir:-}" --mgb2-dir "the MGB-2 release"
  log "MGB-2 $part -> set $set"
  udistil prepare-mgb2 --corpus-dir "$mgb2_dir" --part "$part" --prefix "$prefix" --set "$set" --out-dir "$out_dir" \
    --mer-thresh "${mer_thresh:-80}" $([ "${skip_bad_audio:-true}" = true ] && echo --skip-bad-audio)
done
