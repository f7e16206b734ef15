"""Which tokens Whisper may emit at each step, read off the model's generation config.

These are the rules `model.generate()` applies for Whisper (suppressed tokens, tokens
suppressed at the first step, and the timestamp grammar), written for one batched
decoding loop that we control ourselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from udistil.errors import UdistilError

# A timestamp token is worth 20 ms; the first segment may not start later than this.
TIMESTAMP_RESOLUTION = 0.02
MAX_INITIAL_TIMESTAMP = 1.0


@dataclass
class TokenRules:
    vocab_size: int
    start_of_transcript: int
    end_of_text: int
    transcribe: int | None
    no_timestamps: int
    timestamp_begin: int
    lang_to_id: dict[str, int]
    suppress: torch.Tensor           # bool [V]: never emitted
    suppress_at_begin: torch.Tensor  # bool [V]: not emitted as the first token
    # An end of text below this probability is not taken (DecodeOptions.min_eot_prob).
    min_eot_prob: float = 0.0

    @property
    def is_multilingual(self) -> bool:
        return bool(self.lang_to_id)

    @classmethod
    def from_model(cls, model, min_eot_prob: float = 0.0) -> "TokenRules":
        """The rules of `model`, their masks on the model's device (the logits' device)."""
        gen = model.generation_config
        vocab = model.config.vocab_size
        missing = [k for k in ("decoder_start_token_id", "eos_token_id", "no_timestamps_token_id")
                   if getattr(gen, k, None) is None]
        if missing:
            raise UdistilError(f"the model's generation_config lacks {', '.join(missing)}; "
                               "prepare it with `udistil prepare-model`")
        eot = gen.eos_token_id[0] if isinstance(gen.eos_token_id, list) else gen.eos_token_id
        lang_to_id = {k.strip("<|>"): v for k, v in (getattr(gen, "lang_to_id", None) or {}).items()}
        task_to_id = getattr(gen, "task_to_id", None) or {}
        no_ts = gen.no_timestamps_token_id
        device = model.device
        suppress = torch.zeros(vocab, dtype=torch.bool, device=device)
        for tok in gen.suppress_tokens or []:
            if tok < vocab:
                suppress[tok] = True
        # Control tokens (start, language, task, lm, prev, nospeech, notimestamps) sit
        # between end-of-text and the first timestamp; none of them is ever output text.
        suppress[eot + 1:no_ts + 1] = True
        at_begin = torch.zeros(vocab, dtype=torch.bool, device=device)
        for tok in getattr(gen, "begin_suppress_tokens", None) or []:
            if tok < vocab:
                at_begin[tok] = True
        at_begin[eot] = True  # an empty transcript is never the right first step
        return cls(vocab, gen.decoder_start_token_id, eot, task_to_id.get("transcribe"), no_ts,
                   no_ts + 1, lang_to_id, suppress, at_begin, min_eot_prob)

    def prompt(self, language: str | None, timestamps: bool) -> list[int]:
        """<|startoftranscript|> <|lang|> <|transcribe|> [<|notimestamps|>]."""
        tokens = [self.start_of_transcript]
        if self.is_multilingual:
            if language is None:
                raise ValueError("a multilingual prompt needs a language (detect it first)")
            tokens += [self.lang_to_id[language], self.transcribe]
        if not timestamps:
            tokens.append(self.no_timestamps)
        return tokens

    def supports(self, language: str | None) -> bool:
        if self.is_multilingual:
            return language is None or language in self.lang_to_id
        return language in (None, "en")

    def language_ids(self) -> torch.Tensor:
        return torch.tensor(sorted(self.lang_to_id.values()), device=self.suppress.device)

    def id_to_language(self, token_id: int) -> str:
        for lang, tid in self.lang_to_id.items():
            if tid == token_id:
                return lang
        raise KeyError(token_id)

    def is_timestamp(self, token: int) -> bool:
        return token >= self.timestamp_begin

    def timestamp_seconds(self, token: int) -> float:
        return (token - self.timestamp_begin) * TIMESTAMP_RESOLUTION

    def timestamp_token(self, seconds: float) -> int:
        """The timestamp token nearest to `seconds` into the window (timestamp_seconds' inverse)."""
        return self.timestamp_begin + round(seconds / TIMESTAMP_RESOLUTION)

    def mask_logits(self, logits: torch.Tensor, generated: list[list[int]], timestamps: list[bool]) -> torch.Tensor:
        """Set disallowed tokens to -inf, row by row (logits: [B, V], float32)."""
        logits = logits.masked_fill(self.suppress, float("-inf"))
        stamped = []
        for row, seq in enumerate(generated):
            if not seq:
                logits[row].masked_fill_(self.suppress_at_begin, float("-inf"))
            if timestamps[row]:
                self._apply_timestamp_grammar(logits[row], seq)
                stamped.append(row)
            else:
                logits[row, self.timestamp_begin:] = float("-inf")
        if stamped:
            # When the timestamps together are likelier than any single text token, emit one
            # (one batched log-softmax rather than one per row: this runs at every step).
            rows = torch.tensor(stamped, device=logits.device)
            logprobs = torch.log_softmax(logits[rows], dim=-1)
            tb = self.timestamp_begin
            force = torch.logsumexp(logprobs[:, tb:], dim=-1) > logprobs[:, :tb].max(dim=-1).values
            if force.any():
                logits[rows[force], :tb] = float("-inf")
        if self.min_eot_prob > 0:
            self._refuse_unsure_ends(logits)
        return logits

    def _refuse_unsure_ends(self, logits: torch.Tensor) -> None:
        """Rows whose best token is end of text at a probability under min_eot_prob lose it
        (in place), so they take their next best token."""
        eot = self.end_of_text
        unsure = logits.argmax(dim=-1) == eot
        if unsure.any():
            p_end = torch.softmax(logits[unsure], dim=-1)[:, eot]
            rows = unsure.nonzero()[:, 0][p_end < self.min_eot_prob]
            logits[rows, eot] = float("-inf")

    def _apply_timestamp_grammar(self, row_logits: torch.Tensor, seq: list[int]) -> None:
        """Timestamps come in (start, end) pairs around text and never go backwards."""
        tb, neg_inf = self.timestamp_begin, float("-inf")
        if not seq:
            row_logits[:tb] = neg_inf  # a transcript with timestamps opens with one
            last_allowed = tb + round(MAX_INITIAL_TIMESTAMP / TIMESTAMP_RESOLUTION)
            row_logits[last_allowed + 1:] = neg_inf
            return
        last_is_ts = seq[-1] >= tb
        penultimate_is_ts = len(seq) < 2 or seq[-2] >= tb
        if last_is_ts:
            if penultimate_is_ts:
                row_logits[tb:] = neg_inf          # a segment was just closed: text next
            else:
                row_logits[:self.end_of_text] = neg_inf  # text ended: a timestamp (or end) next
        last_stamp = next((t for t in reversed(seq) if t >= tb), None)
        if last_stamp is not None:
            floor = last_stamp if (last_is_ts and not penultimate_is_ts) else last_stamp + 1
            row_logits[tb:floor] = neg_inf
