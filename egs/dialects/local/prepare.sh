#!/usr/bin/env bash
# Stage 1 for the dialect evaluation sets (language ar).  Sets: test_mgb3, test_mgb5 (Kaldi
# dirs), test_fleurs_ar_eg (and fleurs_ar_eg_train/dev), every set=dir of --kaldi-sets and
# every set=dir[:split] of --hf-sets.  Prepared sets are skipped.
. "$(dirname "${BASH_SOURCE[0]}")/../../common/prepare_lib.sh"

lookup() {  # lookup SET "k=v k2=v2" -> v (empty if absent)
  local pair
  for pair in $2; do [ "${pair%%=*}" = "$1" ] && { echo "${pair#*=}"; return; }; done
  true
}
fleurs() {  # fleurs SPLIT SET
  need_dir "${fleurs_dir:-}" --fleurs-dir "FLEURS"
  udistil prepare-fleurs --corpus-dir "$fleurs_dir" --config ar_eg --split "$1" --language ar \
    --prefix "$prefix" --set "$2" --out-dir "$out_dir"
}

for set in $(requested_sets); do
  if prepared "$set"; then log "set $set already prepared, skipping"; continue; fi
  kaldi=$(lookup "$set" "${kaldi_sets:-}")
  hf=$(lookup "$set" "${hf_sets:-}")
  if [ -n "$kaldi" ]; then
    need_dir "$kaldi" --kaldi-sets "the Kaldi data dir of $set"
    import_kaldi_set "$set" "$kaldi" ar
  elif [ -n "$hf" ]; then
    dir=${hf%%:*}; split=""; [[ $hf == *:* ]] && split=${hf#*:}
    need_dir "$dir" --hf-sets "the saved dataset of $set"
    udistil prepare-hf-dataset --dataset-dir "$dir" ${split:+--split "$split"} --language ar \
      --prefix "$prefix" --set "$set" --out-dir "$out_dir"
  else
    case "$set" in
      test_mgb3) need_dir "${mgb3_dir:-}" --mgb3-dir "the MGB-3 Kaldi data dir"; import_kaldi_set "$set" "$mgb3_dir" ar ;;
      test_mgb5) need_dir "${mgb5_dir:-}" --mgb5-dir "the MGB-5 Kaldi data dir"; import_kaldi_set "$set" "$mgb5_dir" ar ;;
      test_fleurs_ar_eg) fleurs test "$set" ;;
      fleurs_ar_eg_train) fleurs train "$set" ;;
      fleurs_ar_eg_dev) fleurs dev "$set" ;;
      *) unknown_set "$set" test_mgb3 test_mgb5 test_fleurs_ar_eg "(or a set named in --kaldi-sets / --hf-sets)" ;;
    esac
  fi
done
