"""Teacher and student logits for one batch.

`StudentForward` is the student's side: its encoder at its own audio context (or states
from the frozen-encoder cache), then its decoder; the trainer wraps it in DDP, so every
parameter that learns goes through its forward.  When the teacher's targets are stored
(the default, teacher/kd_targets.py), that is all a training step runs.

`DistillForward` is the live-teacher path, kept for manifests without stored targets and
as the baseline the benchmark compares with: it runs the teacher at its full 30 s context
on every step, computing a shared frozen encoder only once when it can:

When the student keeps the teacher's whole encoder and does not train it, both models
would run the same encoder on the same features: on Whisper the encoder is most of the
cost (1500 positions per 30 s window against a few dozen label tokens), so running it
once and feeding its output to both decoders nearly halves the work of a training step.
`encoders_identical` checks the precondition (same weights, not just the same shape);
otherwise a frozen student encoder still runs without autograd, and a trained one runs
normally.

Encoder adaptation (`--train-encoder-layers K`) trains only the top K encoder layers and the
final layer_norm: the frozen bottom (front end and the first L-K layers) runs without
autograd, or is read from the encoder cache, and the top runs with it on every step.
`encoder_parameter_is_trained` is the one rule of which encoder weights train.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from udistil.models.audio_context import AudioContext, encode as encode_context, encode_bottom, encode_top


class StudentForward(torch.nn.Module):
    """(features | frozen encoder states, decoder ids, positions) -> (logits, last decoder
    hidden, frozen encoder states).

    trained_encoder_layers K: 0 = the encoder is frozen, L (its depth) = all of it trains,
    else only the top K layers and layer_norm do.  `frozen_encoder=True` is K = 0, False
    (with no K) is K = L.  The frozen states are what the encoder cache holds
    (`frozen_encoder_states`): given, they replace the frozen part's computation; they are
    returned (None when nothing is frozen) so that the trainer can cache them.
    """

    def __init__(self, student, frozen_encoder: bool = False, trained_encoder_layers: int | None = None):
        super().__init__()
        self.student = student
        n_layers = len(student.model.encoder.layers)
        if trained_encoder_layers is None:
            trained_encoder_layers = 0 if frozen_encoder else n_layers
        elif frozen_encoder and trained_encoder_layers != 0:
            raise ValueError(f"a frozen encoder trains no layers, not {trained_encoder_layers}")
        check_trained_encoder_layers(trained_encoder_layers, n_layers)
        self.trained_encoder_layers = trained_encoder_layers
        self.bottom_layers = frozen_bottom_layers(n_layers, trained_encoder_layers)
        self.context = AudioContext.of(student)

    def encode_frozen(self, input_features: torch.Tensor, positions: int) -> torch.Tensor | None:
        """The frozen part's output, without autograd (None when the whole encoder trains)."""
        if self.trained_encoder_layers == len(self.student.model.encoder.layers):
            return None
        with torch.no_grad():
            return frozen_encoder_states(self.student.model.encoder, input_features, positions, self.bottom_layers)

    def encode_trained(self, frozen_states: torch.Tensor | None, input_features: torch.Tensor | None,
                       positions: int) -> torch.Tensor:
        """The encoder output, from the frozen part's states through what trains (with autograd)."""
        encoder = self.student.model.encoder
        if frozen_states is None:
            return encode_context(encoder, input_features, positions)
        if self.bottom_layers is None:
            return frozen_states
        return encode_top(encoder, frozen_states.to(encoder.layer_norm.weight.dtype), self.bottom_layers)

    def encode(self, input_features: torch.Tensor, positions: int) -> torch.Tensor:
        """The encoder's output (its frozen part without autograd)."""
        return self.encode_trained(self.encode_frozen(input_features, positions), input_features, positions)

    def forward(self, decoder_input_ids: torch.Tensor, positions: int,
                input_features: torch.Tensor | None = None,
                encoder_states: torch.Tensor | None = None):
        frozen_states = encoder_states
        if frozen_states is None:
            frozen_states = self.encode_frozen(input_features, positions)
        encoded = self.encode_trained(frozen_states, input_features, positions)
        hidden = self.student.model.decoder(input_ids=decoder_input_ids,
                                            encoder_hidden_states=encoded,
                                            use_cache=False).last_hidden_state
        return self.student.proj_out(hidden), hidden, frozen_states


def check_trained_encoder_layers(trained_layers: int, n_layers: int) -> int:
    from udistil.errors import UdistilError

    if not 0 <= trained_layers <= n_layers:
        raise UdistilError(f"--train-encoder-layers {trained_layers}: the student's encoder has "
                           f"{n_layers} layers; choose 0 (frozen) to {n_layers} (all trained)")
    return trained_layers


def encoder_parameter_is_trained(name: str, n_layers: int, trained_layers: int) -> bool:
    """The one rule of which encoder weights train, for `name` relative to the encoder
    ("layers.3.fc1.weight", "conv1.weight", "layer_norm.bias"...): with the top
    `trained_layers` of `n_layers` trained, those layers and the final layer_norm (it
    normalises what the top layers produce); none when 0, all when n_layers."""
    if trained_layers >= n_layers:
        return True
    if trained_layers <= 0:
        return False
    if name.startswith("layers."):
        return int(name.split(".")[1]) >= n_layers - trained_layers
    return name.startswith("layer_norm.")


def set_encoder_training(student, trained_layers: int) -> None:
    """requires_grad of every encoder weight from `encoder_parameter_is_trained`."""
    encoder = unwrap(student).model.encoder
    n_layers = len(encoder.layers)
    check_trained_encoder_layers(trained_layers, n_layers)
    for name, param in encoder.named_parameters():
        param.requires_grad_(encoder_parameter_is_trained(name, n_layers, trained_layers))


def frozen_encoder_parts_to_eval(student) -> None:
    """Put every encoder part without a trained weight in eval mode (after `student.train()`):
    a frozen part is a fixed feature extractor, so no dropout or layerdrop in it."""
    encoder = unwrap(student).model.encoder
    # The encoder module itself too, when nothing in it trains (its own rates, read by the
    # stock forward); a partly trained one stays in train mode, and `encode_bottom` reads
    # the front end's mode for the front end's dropout.
    for part in (encoder, encoder.conv1, encoder.conv2, encoder.embed_positions, *encoder.layers,
                 encoder.layer_norm):
        if not any(p.requires_grad for p in part.parameters()):
            part.eval()


def frozen_bottom_layers(n_layers: int, trained_layers: int) -> int | None:
    """What the frozen part of the encoder ends with: None when the whole encoder is frozen
    (its output, after layer_norm), else the number of frozen bottom layers, L - K."""
    return None if trained_layers == 0 else n_layers - trained_layers


def frozen_encoder_states(encoder, input_features: torch.Tensor, positions: int,
                          bottom_layers: int | None) -> torch.Tensor:
    """The frozen part's output (`frozen_bottom_layers`): the whole encoder's when None, else
    the hidden states after its first `bottom_layers` layers.  What the encoder cache stores."""
    if bottom_layers is None:
        return encode_context(encoder, input_features, positions)
    return encode_bottom(encoder, input_features, positions, bottom_layers)


def unwrap(model):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def encoders_identical(teacher, student) -> bool:
    t_state = unwrap(teacher).model.encoder.state_dict()
    s_state = unwrap(student).model.encoder.state_dict()
    if t_state.keys() != s_state.keys():
        return False
    return all(t_state[k].shape == s_state[k].shape and torch.equal(t_state[k], s_state[k].to(t_state[k]))
               for k in t_state)


def freeze_encoder(student) -> None:
    set_encoder_training(student, 0)


class LiveOutputs(NamedTuple):
    student_logits: torch.Tensor
    teacher_logits: torch.Tensor
    student_hidden: torch.Tensor  # last decoder states (after the final layer norm)
    teacher_hidden: torch.Tensor


class DistillForward:
    """Callable: batch -> LiveOutputs (both models' logits and last decoder states).

    `student` may be DDP-wrapped (its forward must be the one called so gradients are
    synchronised); `teacher` is always in eval mode and never gets gradients.
    """

    def __init__(self, teacher, student, frozen_encoder: bool, share_encoder: bool):
        if share_encoder and not frozen_encoder:
            raise ValueError("sharing the teacher's encoder needs a frozen student encoder")
        self.teacher = teacher
        self.student = student
        self.frozen_encoder = frozen_encoder
        self.share_encoder = share_encoder

    def __call__(self, input_features: torch.Tensor, decoder_input_ids: torch.Tensor,
                 positions: int | None = None, student_features: torch.Tensor | None = None,
                 student_states=None):
        """The teacher always reads `input_features`.  SpecAugment (augment.py) reaches the
        student alone through `student_features` (its own masked copy) or, when the encoder
        is shared, `student_states` (a function masking a copy of the shared states)."""
        with torch.no_grad():
            teacher_encoded = self.teacher.model.encoder(input_features).last_hidden_state
            # The decoder, then the output projection: what the teacher's forward computes,
            # keeping the state the decoder-state MSE compares (stage 3 stores the same one).
            teacher_hidden = self.teacher.model.decoder(
                input_ids=decoder_input_ids, encoder_hidden_states=teacher_encoded,
                use_cache=False).last_hidden_state
            teacher_logits = self.teacher.proj_out(teacher_hidden)
        # The student (a StudentForward, maybe DDP-wrapped) runs at its own audio context.
        positions = positions or unwrap(self.student).context.positions(10**9)
        shared = None
        if self.share_encoder:
            shared = teacher_encoded if student_states is None else student_states(teacher_encoded)
        student_logits, student_hidden, _ = self.student(
            decoder_input_ids, positions,
            input_features=input_features if student_features is None else student_features,
            encoder_states=shared)
        return LiveOutputs(student_logits, teacher_logits, student_hidden, teacher_hidden)


def two_model_forward(teacher, student, input_features, decoder_input_ids):
    """Reference path: each model runs its own full forward (what sharing must equal)."""
    with torch.no_grad():
        teacher_logits = teacher(input_features=input_features, decoder_input_ids=decoder_input_ids,
                                 use_cache=False).logits
    student_logits = student(input_features=input_features, decoder_input_ids=decoder_input_ids,
                             use_cache=False).logits
    return student_logits, teacher_logits
