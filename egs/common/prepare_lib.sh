# Sourced by egs/<corpus>/local/prepare.sh (stage 1).  run.sh calls the prep script as
#     train_set=... dev_set=... test_sets="..." manifest_prefix=P bash local/prepare.sh data/manifests
# with the recipe's options in the environment; the script writes, for every set named,
#     data/manifests/P_recordings_<set>.jsonl.gz and P_supervisions_<set>.jsonl.gz
set -euo pipefail

out_dir=${1:?usage: prepare.sh OUT_DIR (data/manifests)}
mkdir -p "$out_dir"
prefix=${manifest_prefix:?run.sh exports manifest_prefix}
log() { echo -e "$(date '+%F %T') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

# The sets run.sh asked for: train, dev, then the test sets.
requested_sets() { echo ${train_set:-} ${dev_set:-} ${test_sets:-}; }

prepared() { [ -s "$out_dir/${prefix}_recordings_$1.jsonl.gz" ] && [ -s "$out_dir/${prefix}_supervisions_$1.jsonl.gz" ]; }

need_dir() {  # need_dir VALUE OPTION WHAT: stop with a clear message when a corpus option is unset
  if [ -z "$1" ]; then
    echo "$(basename "$0"): $3 is needed for this set: pass $2 DIR (see the recipe README for the layout)" >&2
    exit 1
  fi
  if [ ! -e "$1" ]; then
    echo "$(basename "$0"): $2 $1: no such file or directory" >&2
    exit 1
  fi
}

unknown_set() {  # unknown_set SET KNOWN...
  local set=$1; shift
  echo "$(basename "$0"): no corpus is known for set '$set'; this recipe prepares: $*" >&2
  exit 1
}

# combine_sets SET PART_SET...: concatenate prepared sets into one (gzip members concatenate).
# Recording ids must differ between the parts; stage 2 stops on a duplicate.
combine_sets() {
  local set=$1; shift
  local kind part
  for kind in supervisions recordings; do
    for part in "$@"; do cat "$out_dir/${prefix}_${kind}_$part.jsonl.gz"; done > "$out_dir/.${kind}_$set.tmp"
    mv "$out_dir/.${kind}_$set.tmp" "$out_dir/${prefix}_${kind}_$set.jsonl.gz"
  done
  log "set $set = $*"
}

# import_kaldi_set SET DIR LANGUAGE: a Kaldi data dir as one set (udistil import-kaldi-dir).
import_kaldi_set() {
  udistil import-kaldi-dir --data-dir "$2" --language "$3" --out-dir "$out_dir" --prefix "$prefix" --split "$1"
}
