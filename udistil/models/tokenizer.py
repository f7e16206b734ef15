"""Whisper's tokenizer rebuilt offline from OpenAI's tiktoken rank files.

The hub is unreachable, and the `tokenizer.json` shipped beside the packaged weights
tokenises some text differently from Whisper itself, so we build a transformers
`WhisperTokenizer` from `multilingual.tiktoken` (or `gpt2.tiktoken` for the English-only
models) as follows:

- ranks are a byte-level BPE vocabulary; token bytes become strings through GPT-2's
  `bytes_to_unicode` table, the same mapping the `tokenizers` ByteLevel pre-tokenizer uses;
- tiktoken stores no merge list, so each merge is recovered by running BPE on a token's
  bytes with only the ranks below its own: the last two parts are the pair that forms it;
- special tokens follow the vocabulary in Whisper's order (end of text, start of
  transcript, 99 languages, tasks, 1501 timestamps).
"""
from __future__ import annotations

import base64
import logging
from pathlib import Path

from udistil.data.languages import WHISPER_LANGUAGES as WHISPER_LANGUAGE_NAMES
from udistil.errors import UdistilError

log = logging.getLogger(__name__)

# Whisper's language order, on which the language tokens' ids depend: the 99 of the v1/v2
# checkpoints (base, tiny), in udistil/data/languages.py, the one list of them.
WHISPER_LANGUAGES = tuple(WHISPER_LANGUAGE_NAMES)
TASKS = ("translate", "transcribe")
N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|> in 20 ms steps

ENDOFTEXT = "<|endoftext|>"
STARTOFTRANSCRIPT = "<|startoftranscript|>"
NOTIMESTAMPS = "<|notimestamps|>"

MULTILINGUAL_RANKS = "multilingual.tiktoken"
ENGLISH_RANKS = "gpt2.tiktoken"

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json")


def default_assets_dir() -> Path:
    """<repo>/tools/assets, where tools/install.sh puts the tiktoken files."""
    return Path(__file__).resolve().parents[2] / "tools" / "assets"


def special_tokens() -> list[str]:
    """Whisper's special tokens after <|endoftext|>, in id order (timestamps last)."""
    return [
        STARTOFTRANSCRIPT,
        *(f"<|{code}|>" for code in WHISPER_LANGUAGES),
        *(f"<|{task}|>" for task in TASKS),
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        NOTIMESTAMPS,
    ]


def timestamp_tokens() -> list[str]:
    return [f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)]


def read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """Parse `base64(token bytes) rank` lines; ranks must be 0..n-1 without gaps."""
    path = Path(path)
    if not path.is_file():
        raise UdistilError(f"{path}: Whisper tokenizer asset missing; run tools/install.sh")
    ranks: dict[bytes, int] = {}
    try:
        for line_no, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
            if not line.strip():
                continue
            token_b64, rank = line.split()
            ranks[base64.b64decode(token_b64)] = int(rank)
    except (ValueError, UnicodeDecodeError) as e:
        raise UdistilError(f"{path}: not a tiktoken rank file (line {line_no}: {e}); "
                           "rerun tools/install.sh") from e
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise UdistilError(f"{path}: ranks are not 0..{len(ranks) - 1}; rerun tools/install.sh")
    return ranks


def _bpe_parts(token: bytes, ranks: dict[bytes, int], below_rank: int) -> list[bytes]:
    """Byte-pair encode `token` using only merges whose result ranks below `below_rank`."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best_rank, best_i = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < below_rank and (best_rank is None or rank < best_rank):
                best_rank, best_i = rank, i
        if best_rank is None:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocabulary (string -> id) and merges ordered by the rank they produce."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_to_char = bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(byte_to_char[b] for b in token)

    vocab = {as_text(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) < 2:
            continue
        parts = _bpe_parts(token, ranks, rank)
        if len(parts) != 2:
            # Every multi-byte tiktoken token is the merge of two lower-ranked ones.
            raise UdistilError(f"token rank {rank} ({token!r}) is not a merge of two lower ranks")
        merges.append((as_text(parts[0]), as_text(parts[1])))
    return vocab, merges


def build_whisper_tokenizer(out_dir=None, multilingual: bool = True, assets_dir=None):
    """A transformers WhisperTokenizer built from the tiktoken ranks.

    With `out_dir`, the tokenizer, a WhisperFeatureExtractor (80 mel bins, 30 s) and so a
    complete WhisperProcessor are saved there.  `multilingual=False` gives the English-only
    (gpt2.tiktoken, vocabulary 51864) tokenizer of the `*.en` models.
    """
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    assets = Path(assets_dir) if assets_dir is not None else default_assets_dir()
    ranks = read_tiktoken_ranks(assets / (MULTILINGUAL_RANKS if multilingual else ENGLISH_RANKS))
    vocab, merges = vocab_and_merges(ranks)
    # <|endoftext|> is added by the constructor (unk/bos/eos) at id len(vocab); the other
    # specials are appended in order after it, so their ids follow Whisper's.
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges, unk_token=ENDOFTEXT,
                                 bos_token=ENDOFTEXT, eos_token=ENDOFTEXT)
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens()})
    # Timestamps are ordinary added tokens (not special), as in the hub's Whisper tokenizers:
    # `_decode_with_timestamps` takes the last special id + 1 as the first timestamp.
    tokenizer.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False)
                          for t in timestamp_tokens()])
    # The constructor computed the <|startoftranscript|> prefix before it existed.
    tokenizer.set_prefix_tokens()
    _check_ids(tokenizer, n_ranks=len(ranks))
    if out_dir is not None:
        save_processor(tokenizer, out_dir)
    return tokenizer


def _check_ids(tokenizer, n_ranks: int) -> None:
    """Whisper's ids are fixed by its checkpoints; a shifted table would silently garble output."""
    expected = {ENDOFTEXT: n_ranks, STARTOFTRANSCRIPT: n_ranks + 1,
                NOTIMESTAMPS: n_ranks + 1 + len(special_tokens()) - 1,
                "<|0.00|>": n_ranks + 1 + len(special_tokens())}
    for token, token_id in expected.items():
        got = tokenizer.convert_tokens_to_ids(token)
        if got != token_id:
            raise UdistilError(f"tokenizer built with {token} at id {got}, expected {token_id}")
    if len(tokenizer) != n_ranks + 1 + len(special_tokens()) + N_TIMESTAMPS:
        raise UdistilError(f"tokenizer has {len(tokenizer)} tokens, expected "
                           f"{n_ranks + 1 + len(special_tokens()) + N_TIMESTAMPS}")


def save_processor(tokenizer, out_dir, num_mel_bins: int = 80):
    """Save `tokenizer` and a Whisper feature extractor as a WhisperProcessor in `out_dir`."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=num_mel_bins),
                                 tokenizer=tokenizer)
    processor.save_pretrained(str(out))
    return processor
