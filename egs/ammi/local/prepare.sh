#!/usr/bin/env bash
# Stage 1 for AMMI, one language ($lang): sets train (the train split, less any clip that
# reads a line also read in val or test), dev (the val split) and test_<lang> (the test
# split), each a fixed, seeded subset unless its size is 0 (see udistil/recipes/ammi.py).  Arabic combines the clones
# in --ar-dirs.  Prepared sets are skipped; delete data/manifests to redo them.
. "$(dirname "${BASH_SOURCE[0]}")/../../common/prepare_lib.sh"

case "${lang:-}" in
  ar) clones=(${ar_dirs:-}); option=--ar-dirs; what="the Arabic clones (both repositories)" ;;
  sw) clones=(${sw_dir:-}); option=--sw-dir; what="the Swahili clone" ;;
  *) echo "prepare.sh: lang must be ar or sw, not '${lang:-}'" >&2; exit 1 ;;
esac
[ ${#clones[@]} -gt 0 ] || need_dir "" $option "$what"
corpus_args=()
for d in "${clones[@]}"; do need_dir "$d" $option "$what"; corpus_args+=(--corpus-dir "$d"); done

ammi() {  # ammi SPLIT SET [options]
  udistil prepare-ammi "${corpus_args[@]}" --language "$lang" --split "$1" --set "$2" \
    --prefix "$prefix" --out-dir "$out_dir" "${@:3}"
}

for set in $(requested_sets); do
  if prepared "$set"; then log "set $set already prepared, skipping"; continue; fi
  case "$set" in
    train) ammi train train ${train_size:+--subset-size $train_size} ;;
    dev) ammi val dev ${dev_size:+--subset-size $dev_size} ;;
    test_$lang) ammi test "$set" ${test_size:+--subset-size $test_size} ;;
    *) unknown_set "$set" train dev "test_$lang" ;;
  esac
done
