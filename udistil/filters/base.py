"""The one interface every quality filter implements.

A filter reads stage-3 cuts (pseudo-label and per-token statistics in
`supervision.custom`, docs/design.md) and produces one number per cut, or None with a reason
when it cannot score that cut.  The runner (`udistil.filters.runner`) batches, shards,
resumes and writes the number to `supervision.custom[<name>]`; filters never touch files.

Class attributes say what a filter is, so selection and the report can use a filter's
direction without loading its models:
  name             the custom key it writes;
  higher_is_worse  True for error-like scores (proxy_wer, nll, entropy), False for
                   similarity scores (confidence, pesq, sonar_sim);
  label_free       False only for filters that read the ground truth (oracle_wer);
  needs            what `score` is given or reads: "audio" (16 kHz arrays), "teacher"
                   (stage-3 custom keys), "reference" (supervision.text), "scores" (other
                   filters' columns), "model" (a second model pass);
  default_threshold  the selection threshold used when none is given (None: no natural
                   threshold; select by --keep-fraction);
  whole_set        True when a cut's score depends on the other cuts (rank fusion): the
                   runner then scores the set in one piece instead of per batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from lhotse.cut import Cut

from udistil.data.manifests import supervision


@dataclass(slots=True)  # one per cut, all held at once by a whole-set filter
class Score:
    """One cut's score; `value` None means "cannot score", and `reason` says why."""

    value: float | None
    reason: str | None = None

    @classmethod
    def null(cls, reason: str) -> "Score":
        return cls(None, reason)


class Filter:
    name: str = ""
    higher_is_worse: bool = True
    label_free: bool = True
    needs: tuple[str, ...] = ("teacher",)
    default_threshold: float | None = None
    whole_set: bool = False
    # Cuts per call to `score` (audio filters load this many clips at once).
    batch_size: int = 64

    def score(self, cuts: Sequence[Cut], audios: Sequence[np.ndarray | None]) -> list[Score]:
        """Scores for `cuts`; `audios[i]` is cut i's samples when "audio" is in `needs`, else None.

        An audio entry is None when the cut's audio could not be loaded; the runner has
        already turned such cuts into nulls, so filters see only loadable audio.
        """
        raise NotImplementedError

    @classmethod
    def runs_model(cls, options: dict) -> bool:
        """Whether this filter, built with `options`, runs a model (so its --dtype matters)."""
        return "model" in cls.needs

    def describe(self) -> str:
        direction = "higher = worse" if self.higher_is_worse else "higher = better"
        return f"{self.name} ({direction}; {'label-free' if self.label_free else 'needs references'})"


class AudioModelFilter(Filter):
    """A filter that runs a model on each clip's audio beside the teacher's label (proxy_wer,
    consistency, pesq, sonar_sim): run.sh shards it like stage 3, and it loads audio in
    batches of this size."""
    needs = ("audio", "teacher", "model")
    batch_size = 16


def teacher_field(cut: Cut, key: str):
    """A stage-3 value from supervision.custom (None when absent)."""
    return (supervision(cut).custom or {}).get(key)


def teacher_text(cut: Cut) -> str:
    text = teacher_field(cut, "teacher_text")
    return text.strip() if isinstance(text, str) else ""


def cut_language(cut: Cut) -> str | None:
    """The cut's language: the manifest's, else the one the teacher detected."""
    return supervision(cut).language or teacher_field(cut, "teacher_language") or None


def worse_is_higher(value: float | None, higher_is_worse: bool) -> float | None:
    """Orient a score so that higher means worse (for fusion, AUROC and selection)."""
    if value is None:
        return None
    return float(value) if higher_is_worse else -float(value)
