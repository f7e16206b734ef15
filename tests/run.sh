#!/usr/bin/env bash
# The one test command (README): installs what is missing, then runs pytest offline.
#   tests/run.sh                 # the whole suite
#   tests/run.sh -k teacher -x   # any pytest arguments
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/install.sh
. ./path.sh
export HF_HUB_OFFLINE=1
set +e
python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure, not a pass.
[ "$rc" -eq 5 ] && echo "tests/run.sh: no tests were collected" >&2
exit "$rc"
