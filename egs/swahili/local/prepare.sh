#!/usr/bin/env bash
# Stage 1 for Swahili.  Sets: train (Common Voice sw train + ALFFA train [+ FLEURS sw_ke
# train with --fleurs-in-train true], from whichever corpora are given), dev (dev_from:
# Common Voice sw dev, FLEURS sw_ke dev, or whole speakers split off ALFFA train, which then
# leave train; auto = the first of these whose corpus is given), test_cv_sw, test_fleurs_sw,
# test_alffa.  Language sw.  Prepared sets are skipped; delete data/manifests to redo them.
. "$(dirname "${BASH_SOURCE[0]}")/../../common/prepare_lib.sh"

cv() {  # cv SPLIT SET
  need_dir "${cv_dir:-}" --cv-dir "the Common Voice release"
  udistil prepare-common-voice --corpus-dir "$cv_dir" --language sw --split "$1" --prefix "$prefix" \
    --set "$2" --out-dir "$out_dir" --num-jobs "${prep_num_jobs:-1}" --work-dir data/local/common_voice_$1
}
fleurs() {  # fleurs SPLIT SET
  need_dir "${fleurs_dir:-}" --fleurs-dir "FLEURS"
  udistil prepare-fleurs --corpus-dir "$fleurs_dir" --config sw_ke --split "$1" --language sw \
    --prefix "$prefix" --set "$2" --out-dir "$out_dir" --num-jobs "${prep_num_jobs:-1}"
}
alffa() {  # alffa SPLIT SET [--dev-set DEV ...]
  need_dir "${alffa_dir:-}" --alffa-dir "ALFFA Swahili"
  local skip=(); [ "${skip_bad_audio:-true}" = true ] && skip=(--skip-bad-audio)
  udistil prepare-alffa --corpus-dir "$alffa_dir" --split "$1" --prefix "$prefix" --set "$2" --out-dir "$out_dir" \
    "${skip[@]}" "${@:3}"
}

# Where the dev set comes from (the recipe's --dev-from; auto: the first corpus given).
dev_source=${dev_from:-auto}
if [ "$dev_source" = auto ]; then
  if [ -n "${cv_dir:-}" ]; then dev_source=cv
  elif [ -n "${fleurs_dir:-}" ]; then dev_source=fleurs
  elif [ -n "${alffa_dir:-}" ]; then dev_source=alffa
  else dev_source=cv; fi  # need_dir then says what to pass
fi
case "$dev_source" in cv|fleurs|alffa) ;; *) echo "prepare.sh: --dev-from must be auto, cv, fleurs or alffa, not '$dev_source'" >&2; exit 1 ;; esac
# ALFFA train, with the dev speakers split off when dev comes from it.
alffa_train() {
  if [ "$dev_source" = alffa ]; then
    alffa train part_alffa_train --dev-set "$dev_set" --dev-fraction "${alffa_dev_fraction:-0.05}"
  else
    alffa train part_alffa_train
  fi
}

for set in $(requested_sets); do
  if prepared "$set"; then log "set $set already prepared, skipping"; continue; fi
  case "$set" in
    train)
      parts=()
      if [ -n "${cv_dir:-}" ]; then cv train part_cv_train; parts+=(part_cv_train); fi
      if [ -n "${alffa_dir:-}" ]; then alffa_train; parts+=(part_alffa_train); fi
      if [ "${fleurs_in_train:-false}" = true ]; then fleurs train part_fleurs_train; parts+=(part_fleurs_train); fi
      [ ${#parts[@]} -gt 0 ] || { echo "prepare.sh: the train set needs --cv-dir and/or --alffa-dir" >&2; exit 1; }
      combine_sets train "${parts[@]}" ;;
    "$dev_set")
      case "$dev_source" in
        cv) cv dev "$set" ;;
        fleurs) fleurs dev "$set" ;;
        alffa) alffa_train ;;  # writes the dev set (and ALFFA train without its speakers)
      esac ;;
    test_cv_sw) cv test "$set" ;;
    test_fleurs_sw) fleurs test "$set" ;;
    test_alffa) alffa test "$set" ;;
    *) unknown_set "$set" train dev test_cv_sw test_fleurs_sw test_alffa ;;
  esac
done
