"""An exponential moving average of the student's trainable weights (`--average-decay`).

icefall decodes with an averaged model (`--use-averaged-model`) because, on small data, the
weights of the last steps wander around a minimum and their average sits nearer it than any
one of them.  Here the average is updated after every optimizer step; the dev loss is computed
with it, and `EXP/best` is exported from it.  Training itself always continues from the live
weights.  Only trainable weights are averaged (a frozen encoder or embedding never changes).
"""
from __future__ import annotations

import contextlib

import torch

from udistil.errors import UdistilError


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise UdistilError(f"--average-decay must be in (0, 1) (got {decay}); 0 turns averaging off")
        self.decay = decay
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.shadow = [params[name].detach().clone() for name in self.names]

    def _live(self, model) -> list[torch.Tensor]:
        params = dict(model.named_parameters())
        return [params[name].detach() for name in self.names]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """shadow <- decay * shadow + (1 - decay) * live, for every averaged weight."""
        torch._foreach_lerp_(self.shadow, self._live(model), 1.0 - self.decay)

    @contextlib.contextmanager
    def swapped_in(self, model: torch.nn.Module):
        """The model holds the averaged weights inside the block and its own after it."""
        live = self._live(model)
        saved = [t.clone() for t in live]
        with torch.no_grad():
            torch._foreach_copy_(live, self.shadow)
        try:
            yield model
        finally:
            with torch.no_grad():
                torch._foreach_copy_(live, saved)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "names": list(self.names), "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        if state["names"] != self.names:
            raise UdistilError("the checkpoint's weight average covers other weights than this run trains "
                               "(another --freeze-* choice?); resume with the same options")
        self.decay = state["decay"]
        with torch.no_grad():
            torch._foreach_copy_(self.shadow, [t.to(s.device) for t, s in zip(state["shadow"], self.shadow)])
