# Sourced by every run.sh: puts the venv, the udistil command and utils/ on PATH.
# (icefall/ESPnet habit: `. ./path.sh` at the top of a recipe.)
UDISTIL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export UDISTIL_ROOT
export PATH="$UDISTIL_ROOT/tools/venv/bin:$UDISTIL_ROOT/utils:$PATH"
export PYTHONPATH="$UDISTIL_ROOT${PYTHONPATH:+:$PYTHONPATH}"
# No model hub is reachable on offline machines; without this the hub client retries for minutes.
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1
