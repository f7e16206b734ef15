#!/usr/bin/env bash
# AMMI student corpora: read Arabic (two speakers, two repositories) and Swahili, MIT.
# One language per run, each in its own working directory (outputs go to the current
# directory): train = the unlabelled pool (its transcripts score filters and the
# supervised baseline only), dev = the val split, test_<lang> = the test split; each a
# fixed, seeded subset by default.
#
#   mkdir -p ar && cd ar && ../run.sh --lang ar --ar-dirs "/data/ammi/ar_ahmed /data/ammi/ar_abubakr"
#   mkdir -p sw && cd sw && ../run.sh --lang sw --sw-dir /data/ammi/Swahili-Speech
#   ./run.sh --help
set -euo pipefail

# Language of this run: ar or sw.
lang=ar
# Clones of the two Arabic repositories, space separated (combined into one corpus).
ar_dirs=
# Clone of the Swahili repository.
sw_dir=
# Clips in the fixed, seeded subsets of train, val and test ("" = the defaults of
# udistil/recipes/ammi.py, sized for two CPU hours: train 300 ar / 120 sw, val 100 ar / all
# sw, test 300 ar / 100 sw; 0 = the whole split).
train_size=
dev_size=
test_size=
recipe_options="lang ar_dirs sw_dir train_size dev_size test_size"
. "$(dirname "${BASH_SOURCE[0]}")/../common/recipe.sh"

case "$lang" in ar|sw) ;; *) echo "$0: --lang must be ar or sw, not '$lang'" >&2; exit 1 ;; esac
# Stages 1-2 skip finished work, so a directory already holding the other language's run
# would silently mix the two: refuse it.
if [ -f data/manifests/.done ] && [ ! -e data/manifests/ammi_${lang}_recordings_train.jsonl.gz ]; then
  echo "$0: $(pwd) holds another language's run (no ammi_${lang} manifests); run each language in its own directory" >&2
  exit 1
fi

run_pipeline --manifest-prefix "ammi_$lang" --train-set train --dev-set dev --test-sets "test_$lang"
