#!/usr/bin/env bash
# The one test command (README): installs what is missing, then runs pytest offline.
#   tests/run.sh                 # the whole suite
#   tests/run.sh -k teacher -x   # any pytest arguments
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/install.sh
# The Slurm backend is tested against a real one-node Slurm on localhost; starting it needs
# root (apt + daemons).  Best effort: without it those tests skip and say why.
# UDISTIL_TEST_SLURM=0 skips this step.
if [ "${UDISTIL_TEST_SLURM:-1}" != 0 ] && [ "$(id -u)" -eq 0 ]; then
  tests/slurm/start_slurm.sh || echo "tests/run.sh: could not start Slurm; the Slurm tests will skip" >&2
fi
. ./path.sh
export HF_HUB_OFFLINE=1
set +e
python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure, not a pass.
[ "$rc" -eq 5 ] && echo "tests/run.sh: no tests were collected" >&2
exit "$rc"
