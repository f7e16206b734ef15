"""Dynamic audio context: a Whisper encoder that runs on the clip, not on 30 s of padding.

Whisper always encodes a 30 s window (1500 encoder positions, 50 per second), however short
the clip.  On a CPU the encoder is most of the cost of transcribing a short clip, so a
student that encodes only the clip plus a margin is several times faster.  A stock Whisper
degrades on a short context (it was never trained on one); a student learns it by
distillation from the full-context teacher (the idea of FUTO's whisper-acft).

The rule is recorded in the model's `config.json` as `udistil_audio_context`, so every path
that runs the model (stage 7, `udistil decode`, pseudo-labelling with a student, proxy
scoring, transcription and export) reads it from one place:

    {"rule": "clip", "margin": 32, "quantum": 64}

positions = min(1500, roundup(ceil(samples / 320) + margin, quantum))

The quantum makes the context length a step function of the duration, so clips can be
grouped by their exact context length: a batch is encoded at one length with no padding
beyond the rule's, in training and at inference alike (Whisper's decoder has no mask for
its cross-attention, so a padded batch would change what a short clip's decoder sees).
A model without the key (every stock Whisper, every teacher) has the rule "full": 1500.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from udistil.errors import UdistilError

CONFIG_KEY = "udistil_audio_context"
SAMPLE_RATE = 16000
SAMPLES_PER_POSITION = 320      # 10 ms mel hop x conv stride 2
FULL_POSITIONS = 1500           # 30 s
RULES = ("full", "clip")


@dataclass(frozen=True)
class AudioContext:
    rule: str = "full"
    margin: int = 32
    quantum: int = 64
    max_positions: int = FULL_POSITIONS

    def __post_init__(self):
        if self.rule not in RULES:
            raise UdistilError(f"unknown audio-context rule {self.rule!r}; choose one of {RULES}")
        if self.margin < 0 or self.quantum < 1:
            raise UdistilError(f"audio context needs margin >= 0 and quantum >= 1, got {self}")

    @property
    def is_dynamic(self) -> bool:
        return self.rule == "clip"

    def positions(self, num_samples: int) -> int:
        """Encoder positions for a clip of `num_samples` 16 kHz samples."""
        if not self.is_dynamic:
            return self.max_positions
        needed = math.ceil(num_samples / SAMPLES_PER_POSITION) + self.margin
        return min(self.max_positions, -(-needed // self.quantum) * self.quantum)

    def positions_for_seconds(self, seconds: float) -> int:
        return self.positions(int(round(seconds * SAMPLE_RATE)))

    def to_dict(self) -> dict:
        return {"rule": self.rule, "margin": self.margin, "quantum": self.quantum}

    def describe(self) -> str:
        if not self.is_dynamic:
            return "full 30 s context (1500 encoder positions)"
        return (f"clip context: ceil(samples/320) + {self.margin} encoder positions, rounded up "
                f"to a multiple of {self.quantum}, at most {self.max_positions}")

    @classmethod
    def from_dict(cls, value: dict | None, max_positions: int = FULL_POSITIONS) -> "AudioContext":
        if not value:
            return cls(max_positions=max_positions)
        try:
            return cls(rule=value.get("rule", "full"), margin=int(value.get("margin", 32)),
                       quantum=int(value.get("quantum", 64)), max_positions=max_positions)
        except (TypeError, ValueError, AttributeError) as e:
            raise UdistilError(f"malformed {CONFIG_KEY} in the model config: {value!r} ({e})") from e

    @classmethod
    def of(cls, model_or_config) -> "AudioContext":
        """The rule recorded in a model (or its config); "full" when none is recorded."""
        config = getattr(model_or_config, "config", model_or_config)
        return cls.from_dict(getattr(config, CONFIG_KEY, None),
                             getattr(config, "max_source_positions", FULL_POSITIONS))


def record(config, context: AudioContext) -> None:
    """Write the rule into a transformers config (saved with the model's config.json)."""
    if context.is_dynamic:
        setattr(config, CONFIG_KEY, context.to_dict())
    elif hasattr(config, CONFIG_KEY):
        delattr(config, CONFIG_KEY)


def log_mel(feature_extractor, audios, positions: int = FULL_POSITIONS):
    """Whisper log-mel features [B, mels, 2 * positions] of 16 kHz clips.

    The feature extractor pads to `positions` worth of samples instead of 30 s: the frames
    past the context are never encoded, and computing them is most of the feature cost of a
    short clip.  Whisper's normalisation (a floor 8 log-units under the maximum) is taken
    over the clip and its silent padding alike, so the kept frames are those of the 30 s
    features.
    """
    samples = 2 * positions * feature_extractor.hop_length
    return feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                             padding="max_length", max_length=samples, truncation=True).input_features


def encode(encoder, input_features, positions: int | None = None):
    """Run a Whisper encoder on the first `2 * positions` mel frames of `input_features`.

    `input_features` is [batch, mels, frames] with frames >= 2 * positions (the feature
    extractor's 3000 are fine: the rest is cut off here).  The positional embeddings are
    sliced to the same length.  Returns the last hidden state [batch, positions, d_model].
    positions=None runs the full context, exactly like the stock encoder.
    """
    return encode_top(encoder, encode_bottom(encoder, input_features, positions), len(encoder.layers))


def encode_bottom(encoder, input_features, positions: int | None = None, layers: int | None = None):
    """The front end (convolutions, sliced positions) and the first `layers` encoder layers
    (all when None): the hidden states [batch, positions, d_model] before the remaining
    layers and the final layer_norm.  `encode_top` applies those, so that a partly frozen
    encoder can run its frozen bottom once (or read it from a cache) and its top with autograd.
    """
    import torch.nn.functional as F

    full = encoder.embed_positions.num_embeddings
    positions = full if positions is None else positions
    if not 1 <= positions <= full:
        raise ValueError(f"encoder positions must be in 1..{full}, got {positions}")
    layers = len(encoder.layers) if layers is None else layers
    if not 0 <= layers <= len(encoder.layers):
        raise ValueError(f"the encoder has {len(encoder.layers)} layers, not {layers}")
    frames = 2 * positions
    if input_features.shape[-1] < frames:
        raise ValueError(f"{positions} encoder positions need {frames} mel frames, "
                         f"got {input_features.shape[-1]}")
    x = input_features[..., :frames].to(encoder.conv1.weight.dtype)
    x = F.gelu(encoder.conv1(x))
    x = F.gelu(encoder.conv2(x)).permute(0, 2, 1)
    x = x + encoder.embed_positions.weight[:positions]
    # The front end's own mode, not the encoder's: a frozen front end (in eval mode) under a
    # trained top must add no dropout, and in a uniformly set encoder the two are the same.
    x = F.dropout(x, p=encoder.dropout, training=encoder.conv1.training)
    return _run_layers(encoder, x, 0, layers)


def encode_top(encoder, states, first_layer: int):
    """Encoder layers `first_layer`.. and the final layer_norm on `encode_bottom`'s states:
    encode_top(e, encode_bottom(e, f, p, k), k) == encode(e, f, p) for every k."""
    if not 0 <= first_layer <= len(encoder.layers):
        raise ValueError(f"the encoder has {len(encoder.layers)} layers; cannot start at {first_layer}")
    return encoder.layer_norm(_run_layers(encoder, states, first_layer, len(encoder.layers)))


def _run_layers(encoder, x, start: int, stop: int):
    for layer in encoder.layers[start:stop]:
        # Each layer's own mode (a frozen layer is in eval mode): no layerdrop in a frozen one.
        if layer.training and encoder.layerdrop > 0.0 and float(torch_rand()) < encoder.layerdrop:
            continue
        x = layer(x, None)
        x = x[0] if isinstance(x, tuple) else x
    return x


def torch_rand():
    import torch

    return torch.rand([])
