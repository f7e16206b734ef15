"""Export a Whisper model to a CTranslate2 directory that faster-whisper loads.

The weights are converted by CTranslate2's own `TransformersConverter`; we only make sure
the files faster-whisper reads beside `model.bin` are there and right:
- `tokenizer.json`, saved from the tokenizer we load the model with (for the packaged
  models, the one rebuilt from OpenAI's tiktoken ranks), and checked to encode like it;
- `preprocessor_config.json`, the feature extractor's settings (mel bins, 30 s chunk);
- `udistil_export.json`, what was exported and the model's audio-context rule, which
  `udistil transcribe` reads back;
- `README.md`, for a person holding only the directory.

faster-whisper always pads the features to 30 s.  A student with a clip audio context
(`udistil_audio_context` in its config) was trained on shorter encoder inputs, so it runs
best through `udistil transcribe`, which gives CTranslate2's `generate` only the frames the
rule asks for (CTranslate2 accepts fewer than 3000).  The README says so.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from udistil.errors import UdistilError
from udistil.models.audio_context import CONFIG_KEY, AudioContext

log = logging.getLogger(__name__)

QUANTIZATIONS = ("float32", "float16", "int8")
EXPORT_INFO = "udistil_export.json"
# Files that make a directory a CTranslate2 Whisper model (the converter writes them).
CT2_FILES = ("model.bin", "config.json")
# Strings whose token ids must match between our tokenizer and the exported tokenizer.json.
TOKENIZER_PROBES = (" The quick brown fox.", " مرحبا بالعالم", " Habari ya asubuhi, rafiki!", "12:30 ok")


def is_ctranslate2_dir(path) -> bool:
    """True for a CTranslate2 model directory (ours or anyone's), not a transformers one."""
    path = Path(path)
    return path.is_dir() and all((path / name).is_file() for name in CT2_FILES) \
        and ((path / "vocabulary.json").is_file() or (path / "vocabulary.txt").is_file())


def read_export_info(path) -> dict:
    """The export's `udistil_export.json` ({} for a CTranslate2 directory made elsewhere)."""
    info = Path(path) / EXPORT_INFO
    if not info.is_file():
        return {}
    try:
        return json.loads(info.read_text())
    except (OSError, ValueError) as e:
        raise UdistilError(f"{info}: unreadable export description ({e}); export the model again") from e


def export_audio_context(path) -> AudioContext:
    """The audio-context rule recorded in an export ("full" when none)."""
    return AudioContext.from_dict(read_export_info(path).get("audio_context"))


def _check_tokenizer_json(tokenizer_json: Path, tokenizer) -> None:
    """faster-whisper reads tokenizer.json with `tokenizers`; it must give our ids."""
    import tokenizers

    fast = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    for token in ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>",
                  "<|notimestamps|>", "<|0.00|>"):
        if fast.token_to_id(token) != tokenizer.convert_tokens_to_ids(token):
            raise UdistilError(f"{tokenizer_json}: {token} has id {fast.token_to_id(token)}, the model's "
                               f"tokenizer says {tokenizer.convert_tokens_to_ids(token)}")
    for text in TOKENIZER_PROBES:
        ours = tokenizer.encode(text, add_special_tokens=False)
        theirs = fast.encode(text, add_special_tokens=False).ids
        if ours != theirs:
            raise UdistilError(f"{tokenizer_json}: tokenises {text!r} as {theirs}, the model's tokenizer "
                               f"as {ours}")


# faster-whisper's prompt without timestamps: <|startoftranscript|>, the language,
# <|transcribe|>, <|notimestamps|>.
FASTER_WHISPER_PROMPT_TOKENS = 4


def faster_whisper_max_new_tokens(new_tokens: int) -> int:
    """The `max_new_tokens` that makes faster-whisper generate `new_tokens` tokens: it hands
    prompt + max_new_tokens to CTranslate2 as max_length, and CTranslate2's Whisper generates
    half of max_length (faster-whisper 1.2.1, CTranslate2 4.8.5: 87 asked, 45 generated)."""
    return 2 * new_tokens - FASTER_WHISPER_PROMPT_TOKENS


def readme_text(spec: str, quantization: str, context: AudioContext) -> str:
    from udistil.teacher.transcriber import DecodeOptions

    budget = DecodeOptions()
    lines = [
        "# Whisper model in CTranslate2 format",
        "",
        f"Exported by `udistil export` from `{spec}` with weights in {quantization}.",
        "",
        "```python",
        "from faster_whisper import WhisperModel",
        "model = WhisperModel(\"<this directory>\", device=\"cpu\", compute_type=\"int8\")",
        "segments, info = model.transcribe(\"audio.wav\")",
        "```",
        "",
        "or, with udistil: `udistil transcribe --model <this directory> audio.wav`.",
        "",
        "faster-whisper pads the log-mel features of a clip shorter than 30 s with zeros, where",
        "Whisper pads the audio with silence; on short clips the two can give different text.",
        "Padding each short clip with silence to 30 s before `transcribe` gives Whisper's input.",
        "",
        "faster-whisper has no loop stop: a clip whose decoding starts repeating itself runs on",
        "to its token limit, where udistil keeps one copy of the loop and stops.  To bound a",
        "loop, pass `max_new_tokens`.  faster-whisper hands prompt + max_new_tokens to",
        "CTranslate2 as max_length, and CTranslate2's Whisper generates half of max_length",
        "(faster-whisper 1.2.1, CTranslate2 4.8.5), so udistil's budget of "
        f"{budget.budget_base} + {budget.budget_per_second:g}",
        "tokens per second of audio is",
        "",
        f"    max_new_tokens = 2 * ({budget.budget_base} + {budget.budget_per_second:g} * seconds)"
        f" - {FASTER_WHISPER_PROMPT_TOKENS}",
        "",
    ]
    if context.is_dynamic:
        lines += [
            "## Audio context",
            "",
            "This model was trained to encode only the audio it is given plus a margin, not",
            "Whisper's fixed 30 s window.  Its rule (also in `udistil_export.json`):",
            "",
            f"    {context.describe()}",
            f"    positions = min({context.max_positions}, roundup(ceil(samples / 320) + {context.margin}, "
            f"{context.quantum})); mel frames = 2 * positions",
            "",
            "faster-whisper always pads the features to 30 s (3000 mel frames), so it does not",
            "follow this rule, and its accuracy on short clips may be lower than the model's own.",
            "`udistil transcribe` follows it: CTranslate2's `Whisper.generate` accepts fewer than",
            "3000 mel frames, and it is given exactly `2 * positions` of them.",
            "",
        ]
    return "\n".join(lines)


def export_ctranslate2(spec, out_dir, quantization: str = "float32", cache_dir=None, force: bool = False) -> Path:
    """Convert the Whisper model `spec` (hub id | local dir | packaged:NAME) into `out_dir`.

    Written to a temporary directory and renamed, so an interrupted export leaves nothing
    half-made under `out_dir`.
    """
    from ctranslate2.converters import TransformersConverter
    from transformers import WhisperProcessor

    from udistil.models.spec import resolve_model

    if quantization not in QUANTIZATIONS:
        raise UdistilError(f"unknown quantization {quantization!r}; choose from {', '.join(QUANTIZATIONS)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UdistilError(f"{out}: exists and is not empty; remove it or pass --force")
    source = Path(resolve_model(spec, cache_dir=cache_dir))
    config = json.loads((source / "config.json").read_text())
    if config.get("model_type") != "whisper":
        raise UdistilError(f"{source}: model_type is {config.get('model_type')!r}, not a Whisper model")
    context = AudioContext.from_dict(config.get(CONFIG_KEY), config.get("max_source_positions", 1500))
    try:
        processor = WhisperProcessor.from_pretrained(str(source))
    except Exception as e:  # transformers raises many types for missing/broken tokenizer files
        raise UdistilError(f"{source}: cannot load the Whisper tokenizer/feature extractor "
                           f"({type(e).__name__}: {e})") from e

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("converting %s (%s) to CTranslate2 %s", spec, source, quantization)
    try:
        TransformersConverter(str(source)).convert(str(tmp), quantization=quantization, force=True)
    except Exception as e:  # the converter raises ValueError/KeyError/OSError on odd checkpoints
        shutil.rmtree(tmp, ignore_errors=True)
        raise UdistilError(f"{source}: CTranslate2 conversion failed ({type(e).__name__}: {e})") from e
    # Saved from the tokenizer the model is used with, whatever files the source holds.
    tok_dir = tmp / ".tokenizer"
    processor.tokenizer.save_pretrained(str(tok_dir))
    if not (tok_dir / "tokenizer.json").is_file():
        raise UdistilError(f"{source}: the tokenizer could not be saved as tokenizer.json")
    shutil.move(str(tok_dir / "tokenizer.json"), str(tmp / "tokenizer.json"))
    shutil.rmtree(tok_dir)
    _check_tokenizer_json(tmp / "tokenizer.json", processor.tokenizer)
    processor.feature_extractor.to_json_file(str(tmp / "preprocessor_config.json"))
    info = {"source": str(spec), "source_dir": str(source), "quantization": quantization,
            "audio_context": context.to_dict() if context.is_dynamic else None}
    (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
    (tmp / "README.md").write_text(readme_text(str(spec), quantization, context))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log.info("exported %s -> %s (%s%s)", spec, out, quantization,
             f"; audio context: {context.describe()}" if context.is_dynamic else "")
    return out
