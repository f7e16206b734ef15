"""Whisper's generation settings, derived from the tokenizer.

transformers' Whisper `generate(language=..., task=...)` needs `lang_to_id`, `task_to_id`,
`no_timestamps_token_id` and `is_multilingual` on the generation config; a model built
from a bare config or converted from another format has none of them.
"""
from __future__ import annotations

from udistil.models.tokenizer import (ENDOFTEXT, NOTIMESTAMPS, STARTOFTRANSCRIPT, TASKS,
                                      WHISPER_LANGUAGES)

MAX_TARGET_POSITIONS = 448

# Symbols Whisper never lets the decoder emit (openai-whisper's "non-speech" set).
_NON_SPEECH_SYMBOLS = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』') + (
    "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split())
_MUSIC_SYMBOLS = set("♩♪♫♬♭♮♯")


def non_speech_tokens(tokenizer) -> list[int]:
    """Token ids of lone symbols (and " -", " '"), the usual Whisper `suppress_tokens`."""
    def encode(text):
        return tokenizer.encode(text, add_special_tokens=False)

    ids = {encode(" -")[0], encode(" '")[0]}
    for symbol in _NON_SPEECH_SYMBOLS + sorted(_MUSIC_SYMBOLS):
        for tokens in (encode(symbol), encode(" " + symbol)):
            # Music notes are split into several byte tokens; suppressing the first is enough.
            if len(tokens) == 1 or symbol in _MUSIC_SYMBOLS:
                ids.add(tokens[0])
    return sorted(ids)


def whisper_generation_config(tokenizer, multilingual: bool, suppress_tokens=None,
                              begin_suppress_tokens=None, alignment_heads=None,
                              max_length: int = MAX_TARGET_POSITIONS):
    """A GenerationConfig on which `generate(language=, task="transcribe")` works."""
    from transformers import GenerationConfig

    def token_id(token):
        return tokenizer.convert_tokens_to_ids(token)

    eot = token_id(ENDOFTEXT)
    config = GenerationConfig(
        decoder_start_token_id=token_id(STARTOFTRANSCRIPT),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=max_length,
        no_timestamps_token_id=token_id(NOTIMESTAMPS),
        # The prompt comes from language=/task= at generate time, never from forced ids.
        forced_decoder_ids=None,
        is_multilingual=multilingual,
        suppress_tokens=list(suppress_tokens) if suppress_tokens is not None
        else non_speech_tokens(tokenizer),
        begin_suppress_tokens=list(begin_suppress_tokens) if begin_suppress_tokens is not None
        else [token_id("Ġ"), eot],
    )
    if multilingual:
        config.lang_to_id = {f"<|{code}|>": token_id(f"<|{code}|>") for code in WHISPER_LANGUAGES}
        config.task_to_id = {task: token_id(f"<|{task}|>") for task in TASKS}
    if alignment_heads is not None:
        config.alignment_heads = [list(pair) for pair in alignment_heads]
    return config
