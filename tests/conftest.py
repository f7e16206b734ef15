"""Shared fixtures: espeak-ng speech, tiny random Whisper models, the packaged whisper-base.

Tests build their own small data and need no network and no state from an earlier test.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SPEECH = REPO_ROOT.parent / "shared" / "real-speech"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def speak():
    """speak(text, voice="en", path=None, **kw) -> 16 kHz float32 array (also written to path)."""
    from udistil.tts.espeak import synthesize

    def _speak(text, voice="en", path=None, **kw):
        samples = synthesize(text, voice=voice, **kw)
        if path is not None:
            sf.write(str(path), samples, 16000)
        return samples

    return _speak


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory) -> Path:
    """A randomly initialised multilingual Whisper (a few M params) with the real tokenizer."""
    from udistil.models.tiny import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper"), seed=0)


@pytest.fixture(scope="session")
def whisper_base_dir() -> Path:
    """The real packaged whisper-base converted to a transformers directory (in the model cache, converted once)."""
    from udistil.models.spec import resolve_model

    return Path(resolve_model("packaged:whisper-base"))


def write_wav(path, samples, rate=16000):
    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate)
    return path


@pytest.fixture(scope="session")
def whisper_base_ct2_dir(whisper_base_dir, tmp_path_factory) -> Path:
    """The packaged whisper-base exported to CTranslate2 (int8) by `udistil export`."""
    from udistil.models.export import export_ctranslate2

    return export_ctranslate2(str(whisper_base_dir), tmp_path_factory.mktemp("ct2") / "whisper-base-int8",
                              quantization="int8")


def generate_text(model_dir, samples, language="en", max_new_tokens=5) -> str:
    """The text `model.generate()` gives for `samples` with the directory's own processor: what
    `transformers.pipeline` must reproduce when the directory is a complete checkpoint (the
    right weights, tokenizer, feature extractor and generation config).  Greedy: the pipeline
    must be called with num_beams=1 too (its own default for Whisper is a beam of 5)."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    processor = WhisperProcessor.from_pretrained(str(model_dir))
    model = WhisperForConditionalGeneration.from_pretrained(str(model_dir)).eval()
    features = processor(samples, sampling_rate=16000, return_tensors="pt").input_features
    ids = model.generate(features, language=language, task="transcribe", max_new_tokens=max_new_tokens,
                         num_beams=1)
    return processor.batch_decode(ids, skip_special_tokens=True)[0]


@pytest.fixture(scope="module")
def tiny(tiny_whisper_dir):
    """(model, processor) of the tiny random Whisper, loaded once per test module."""
    from udistil.models.spec import load_whisper

    return load_whisper(str(tiny_whisper_dir))


def noise_clips(n, seconds=(1.0, 4.0), seed=0):
    """n clips of seeded Gaussian noise, each of a length drawn from `seconds`, at 16 kHz."""
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(16000 * rng.uniform(*seconds)))).astype(np.float32)
            for _ in range(n)]
