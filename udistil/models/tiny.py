"""A tiny randomly initialised multilingual Whisper with the real tokenizer, for tests.

It has Whisper's real vocabulary (51865), 80 mel bins and 1500 encoder positions, so it
takes the same 3000-frame features and token ids as whisper-base; only the widths and
depths are small (about 4 M parameters, mostly the token embedding).
"""
from __future__ import annotations

from pathlib import Path

from udistil.models.generation import MAX_TARGET_POSITIONS, whisper_generation_config
from udistil.models.tokenizer import build_whisper_tokenizer


def build_tiny_whisper(out_dir, seed: int = 0, d_model: int = 64, encoder_layers: int = 2,
                       decoder_layers: int = 2, attention_heads: int = 2, ffn_dim: int = 128,
                       assets_dir=None) -> Path:
    """Write a random-init WhisperForConditionalGeneration (+ processor) to `out_dir`.

    The same seed gives the same weights.  Returns `out_dir`.
    """
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    out = Path(out_dir)
    tokenizer = build_whisper_tokenizer(out, multilingual=True, assets_dir=assets_dir)
    generation_config = whisper_generation_config(tokenizer, multilingual=True)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=attention_heads,
        decoder_attention_heads=attention_heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_source_positions=1500,
        max_target_positions=MAX_TARGET_POSITIONS,
        decoder_start_token_id=generation_config.decoder_start_token_id,
        bos_token_id=generation_config.bos_token_id,
        eos_token_id=generation_config.eos_token_id,
        pad_token_id=generation_config.pad_token_id,
        # Suppression lives in the generation config only; WhisperConfig's default
        # begin_suppress_tokens (220, 50256) is the English-only one and would conflict.
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    # Seed a private generator state so building never disturbs the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config)
    model.generation_config = generation_config
    model.save_pretrained(str(out))
    return out
