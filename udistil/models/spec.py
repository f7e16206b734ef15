"""Model arguments: a hub id, a local transformers directory, or `packaged:<name>`.

`resolve_model` turns any of them into a local directory; `load_whisper` loads it for
inference (on a device, in a dtype: models/device.py; eval mode, Whisper generation
settings present).

Packaged models are converted once into the model cache and reused: $UDISTIL_MODEL_CACHE,
else $XDG_CACHE_HOME/udistil/models (~/.cache/udistil/models), outside the checkout, so a
read-only or shared checkout works and every checkout of a machine converts once.  A hub id
is taken from the Hugging Face cache when it is there, and otherwise downloaded into it
(weights for PyTorch only), unless HF_HUB_OFFLINE=1 says the hub must not be asked, as
transformers reads it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from udistil.errors import UdistilError
from udistil.models.packaged import CONVERTED_MARKER, convert_packaged, packaged_names

log = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
PREPARED_MARKER = "udistil_prepared.json"


def default_cache_dir() -> Path:
    """$UDISTIL_MODEL_CACHE, else $XDG_CACHE_HOME/udistil/models (XDG default ~/.cache)."""
    env = os.environ.get("UDISTIL_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "udistil" / "models"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub and transformers read it ("1", "ON", "YES", "TRUE")."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


# Files of other frameworks a hub repository may also hold; not downloaded.
_OTHER_FRAMEWORKS = ["*.msgpack", "*.h5", "*.ot", "*.onnx", "*.onnx_data", "flax_model*", "tf_model*"]


def _looks_like_path(spec: str) -> bool:
    # "org/name" is a hub id unless such a directory exists here; explicit paths never are.
    return spec.startswith(("/", "./", "../", "~")) or Path(spec).exists()


def check_model_dir(path: Path) -> Path:
    """A local transformers directory with a readable config.json."""
    if not path.is_dir():
        raise UdistilError(f"{path}: model directory does not exist")
    config = path / "config.json"
    if not config.is_file():
        raise UdistilError(f"{path}: not a transformers model directory (no config.json)")
    try:
        json.loads(config.read_text())
    except (OSError, ValueError) as e:
        raise UdistilError(f"{config}: unreadable model config: {e}") from e
    return path


def _resolve_packaged(name: str, cache_dir) -> Path:
    if name not in packaged_names():
        raise UdistilError(f"unknown packaged model 'packaged:{name}'; choose from: "
                           + ", ".join(PACKAGED_PREFIX + n for n in packaged_names()))
    target = Path(cache_dir) / name
    if (target / CONVERTED_MARKER).is_file():
        log.info("packaged:%s already converted in %s", name, target)
        return target
    if target.exists():
        # No marker: left by something other than a finished conversion; redo it.
        log.warning("%s exists without %s; converting again", target, CONVERTED_MARKER)
        shutil.rmtree(target)
    return convert_packaged(name, target)


def hub_model_missing(spec: str) -> str:
    """Why hub id `spec` cannot be had offline, or "" when it is in the Hugging Face cache."""
    import huggingface_hub

    try:
        huggingface_hub.snapshot_download(spec, local_files_only=True)
        return ""
    except Exception as e:  # LocalEntryNotFoundError, OSError, ValueError (bad id)
        return f"'{spec}' is not in the Hugging Face cache ({type(e).__name__})"


def _resolve_hub_id(spec: str) -> Path:
    import huggingface_hub

    try:
        return check_model_dir(Path(huggingface_hub.snapshot_download(spec, local_files_only=True)))
    except (UdistilError, Exception) as local_error:  # not cached (or cached incompletely)
        if hub_offline():
            raise UdistilError(
                f"model '{spec}' is neither a local directory nor in the Hugging Face cache, and the hub "
                f"is offline (HF_HUB_OFFLINE=1); download it where the hub can be reached "
                f"(huggingface-cli download {spec}), or pass a local transformers directory or one of "
                + ", ".join(PACKAGED_PREFIX + n for n in packaged_names())) from local_error
    log.info("downloading %s from the Hugging Face hub into its cache", spec)
    try:
        files = huggingface_hub.list_repo_files(spec)
        ignore = _OTHER_FRAMEWORKS + (["*.bin"] if any(f.endswith(".safetensors") for f in files) else [])
        path = Path(huggingface_hub.snapshot_download(spec, ignore_patterns=ignore))
    except Exception as e:  # network errors, RepositoryNotFoundError, GatedRepoError, ...
        raise UdistilError(
            f"model '{spec}' is not a local directory, not in the Hugging Face cache, and could not be "
            f"downloaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check the id and "
            "the network (or log in for a gated model), or pass a local transformers directory") from e
    return check_model_dir(path)


def resolve_model(spec, cache_dir=None) -> str:
    """Local directory for `spec` (hub id | local dir | packaged:whisper-base | packaged:whisper-tiny.en)."""
    spec = str(spec)
    if spec.startswith(PACKAGED_PREFIX):
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return str(_resolve_packaged(spec[len(PACKAGED_PREFIX):], cache))
    if _looks_like_path(spec):
        return str(check_model_dir(Path(spec).expanduser().resolve()))
    return str(_resolve_hub_id(spec))


def ensure_whisper_generation_config(model, tokenizer) -> None:
    """Fill in the Whisper generation fields a checkpoint lacks (keeps the ones it has)."""
    from udistil.models.generation import whisper_generation_config

    current = model.generation_config
    multilingual = getattr(current, "is_multilingual", None)
    if multilingual is None:
        multilingual = tokenizer.convert_tokens_to_ids("<|en|>") not in (None, tokenizer.unk_token_id) \
            and model.config.vocab_size >= 51865
    defaults = whisper_generation_config(tokenizer, multilingual=multilingual,
                                         max_length=model.config.max_target_positions)
    for key in ("lang_to_id", "task_to_id", "no_timestamps_token_id", "is_multilingual",
                "decoder_start_token_id", "suppress_tokens", "begin_suppress_tokens", "max_length"):
        if getattr(current, key, None) is None and getattr(defaults, key, None) is not None:
            setattr(current, key, getattr(defaults, key))


def load_whisper(spec, device="cpu", dtype=None, cache_dir=None):
    """(model, processor) for `spec` on `device` in `dtype`, eval mode, generation settings complete.

    dtype None (or "auto") is the device's default: float32 on the CPU, float16 on CUDA;
    float16 on the CPU is refused (models/device.py holds the rule)."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from udistil.models.device import dtype_name, resolve_dtype

    device = torch.device(device)
    dtype = resolve_dtype(dtype if dtype is None or isinstance(dtype, str) else dtype_name(dtype), device)
    path = Path(resolve_model(spec, cache_dir=cache_dir))
    try:
        model = WhisperForConditionalGeneration.from_pretrained(str(path), dtype=dtype)
    except Exception as e:  # transformers raises OSError/ValueError/SafetensorError/RuntimeError
        raise UdistilError(f"{path}: cannot load the Whisper model ({type(e).__name__}: {e})") from e
    try:
        processor = WhisperProcessor.from_pretrained(str(path))
    except Exception as e:
        raise UdistilError(f"{path}: cannot load the Whisper tokenizer/feature extractor "
                           f"({type(e).__name__}: {e})") from e
    n_tokens = len(processor.tokenizer)
    # Offline, a missing tokenizer can come back empty instead of raising.
    if n_tokens == 0 or n_tokens > model.config.vocab_size:
        raise UdistilError(f"{path}: tokenizer has {n_tokens} tokens for a model vocabulary of "
                           f"{model.config.vocab_size}; the tokenizer files are missing or wrong")
    ensure_whisper_generation_config(model, processor.tokenizer)
    model.to(device).eval()
    return model, processor


def prepare_model(spec, out_dir, cache_dir=None) -> Path:
    """Make `out_dir` a ready transformers directory for `spec` (files linked, marker written).

    Skips when `out_dir` already holds a prepared model of the same spec.
    """
    out = Path(out_dir)
    marker = out / PREPARED_MARKER
    if marker.is_file():
        try:
            done = json.loads(marker.read_text())
        except ValueError:
            done = {}
        if done.get("spec") == str(spec):
            log.info("%s already prepared from %s; skipping", out, spec)
            return out
        raise UdistilError(f"{out}: already prepared from {done.get('spec')!r}, not {spec!r}; "
                           "remove it or choose another directory")
    source = Path(resolve_model(spec, cache_dir=cache_dir)).resolve()
    if out.exists() and out.resolve() == source:
        marker.write_text(json.dumps({"spec": str(spec), "source": str(source)}) + "\n")
        return out
    if out.exists() and any(out.iterdir()):
        raise UdistilError(f"{out}: exists and is not a prepared model directory; remove it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # Link each file (resolving hub-cache symlinks) rather than copying hundreds of MB.
    for item in sorted(source.iterdir()):
        if item.is_file() and item.name not in (PREPARED_MARKER,):
            (tmp / item.name).symlink_to(item.resolve())
    (tmp / PREPARED_MARKER).write_text(json.dumps({"spec": str(spec), "source": str(source)}) + "\n")
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    log.info("prepared %s -> %s", spec, out)
    return out
