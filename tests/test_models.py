"""Model building, conversion of the packaged CTranslate2 weights, and model resolution."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file


def _features(processor, samples):
    return processor(samples, sampling_rate=16000, return_tensors="pt").input_features


def test_tiny_whisper_generates_and_is_deterministic(tiny_whisper_dir, tmp_path, speak):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from udistil.models.tiny import build_tiny_whisper

    model = WhisperForConditionalGeneration.from_pretrained(str(tiny_whisper_dir)).eval()
    processor = WhisperProcessor.from_pretrained(str(tiny_whisper_dir))
    assert sum(p.numel() for p in model.parameters()) < 10_000_000
    features = _features(processor, speak("hello there", voice="en"))
    assert features.shape == (1, 80, 3000)
    with torch.no_grad():
        out = model.generate(features, language="ar", task="transcribe", max_new_tokens=4,
                             return_dict_in_generate=True)
    # With return_dict_in_generate the sequences start with the forced prompt.
    assert out.sequences[0, :4].tolist() == [50258, 50272, 50359, 50363]

    again = load_file(str(build_tiny_whisper(tmp_path / "same", seed=0) / "model.safetensors"))
    other = load_file(str(build_tiny_whisper(tmp_path / "other", seed=1) / "model.safetensors"))
    first = load_file(str(tiny_whisper_dir / "model.safetensors"))
    name = "model.decoder.layers.0.fc1.weight"
    assert torch.equal(first[name], again[name])
    assert not torch.equal(first[name], other[name])
