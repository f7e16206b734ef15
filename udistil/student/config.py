"""All options of a distillation run, grouped by concern (icefall habit), and their defaults.

These defaults are the tuned ones: what stage 6 of run.sh trains is what `udistil distill`
trains with no options (run.sh reads them from here, through `python3 -m udistil.defaults`).
How each was chosen is in docs/experiments.md.  This module imports nothing heavy, so the
shell can read it without torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class DataOptions:
    batch_size: int = 8             # cuts per batch (Whisper pads every cut to 30 s)
    max_duration: float | None = None  # optional cap on seconds of speech per batch
    num_buckets: int = 10
    num_workers: int | None = None  # None: 2 on GPU, 0 on CPU
    leading_space: bool = True
    # Share of the cuts labelled with timestamps that are trained with them (docs/timestamps.md).
    timestamp_share: float = 0.2


@dataclass
class AugmentOptions:
    """SpecAugment (Park et al. 2019) on what the student alone reads, in training only
    (student/augment.py).  Off until its widths are chosen on dev; the widths are Park et al.'s
    LD policy (F = 27 of 80 mel bins, T = 100 frames, two of each), with their p = 0.2 cap
    because our clips are short (1 s is 100 frames)."""
    spec_augment: bool = False
    freq_masks: int = 2              # frequency masks per cut
    freq_mask_width: int = 27        # each up to this many mel bins
    time_masks: int = 2              # time masks per cut
    time_mask_width: int = 100       # each up to this many 10 ms frames (half as many encoder positions)
    time_mask_max_fraction: float = 0.2  # and at most this share of the cut's real frames


@dataclass
class OptimOptions:
    # Chosen on the mini dev set's label-free distillation loss for the 6-3 student at 6 epochs.
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    schedule: str = "linear"        # linear | cosine | constant (after warmup)
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    num_epochs: int = 6
    max_steps: int | None = None    # optimizer steps; default num_epochs x batches per epoch
    dropout: float = 0.0            # decoder dropout while training (whisper's configs have 0)
    # EMA of the weights for dev loss and export (0 = off; averaging.py).  Off: 0.98 gained on
    # the mini dev ruler of the training voices and nowhere else (docs/experiments.md).
    average_decay: float = 0.0


@dataclass
class RunOptions:
    seed: int = 42
    device: str = "auto"            # auto (cuda when visible, else cpu) | cpu | cuda (models/device.py)
    precision: str = "auto"         # auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    checkpoint_every: int = 20      # optimizer steps
    keep_checkpoints: int = 2
    export_every_epoch: bool = False  # EXP/epochs/epoch-NNN after each epoch (learning curves)
    valid_every: int = 30           # optimizer steps; dev loss is also computed at the end
    max_dev_cuts: int | None = 16   # N usable dev cuts, evenly spread (a dev pass is costly on a CPU; None: all)
    log_every: int = 1
    freeze_encoder: bool | None = None  # None: freeze when the student keeps every encoder layer
    # Train only the top K encoder layers (and its layer_norm); 0 = frozen, L = all; None: as above.
    train_encoder_layers: int | None = None
    share_encoder: bool = True      # live teacher: when frozen and identical, compute the encoder once
    encoder_cache: str | None = None  # frozen encoder: store its outputs here, once per cut
    # The decoder's token (= output, 51865-way) and position embeddings: the largest gradient and
    # optimizer state of a small decoder, and little to learn from a few hundred clips.
    freeze_embeddings: bool = True
    stop_after_steps: int | None = None  # exit cleanly (checkpointed) here, e.g. for a time limit
    resume: bool = False


@dataclass
class LossWeights:
    """alpha_ce * CE + alpha_kl * T^2 * KL(teacher || student) + alpha_mse * MSE(decoder states)."""
    alpha_ce: float = 0.8
    alpha_kl: float = 1.0
    temperature: float = 2.0
    # The MSE between the student's last decoder state and the teacher's (0 = off): the state
    # fixes the teacher's whole next-token distribution, where the stored top-64 at T = 2 holds
    # about 15 % of its mass on English.  Chosen on the mini dev ruler (docs/experiments.md).
    alpha_mse: float = 1.0
    # Soft selection: each training cut's loss weighted by 1 - score/100 of this filter (a 0-100
    # higher-is-worse score: fusion, proxy_wer, ...; student/cut_weights.py).  None: unweighted.
    weight_by: str | None = None


@dataclass
class DistillConfig:
    teacher: str
    student: str
    train: str
    dev: str
    exp: str
    data: DataOptions = field(default_factory=DataOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    run: RunOptions = field(default_factory=RunOptions)
    loss: LossWeights = field(default_factory=LossWeights)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    # The model that labelled train and dev and made their stored targets, when it is not the
    # teacher (a later round of self-training labels with an earlier round's student); the
    # teacher still decides the encoder mode, as the student's layers come from it.
    labeller: str | None = None

    def __post_init__(self):
        """A value out of its range is a usage error naming the option, before anything is
        loaded: a batch of 0 cuts or a negative learning rate was a traceback from deep inside
        training, and 0 epochs or steps exported an untrained student as if trained."""
        d, o, r, loss = self.data, self.optim, self.run, self.loss
        problems = [
            (d.batch_size < 1, f"--batch-size must be at least 1 (got {d.batch_size})"),
            (d.num_buckets < 1, f"--num-buckets must be at least 1 (got {d.num_buckets})"),
            (not 0.0 <= d.timestamp_share <= 1.0, f"--timestamp-share must be in [0, 1] (got {d.timestamp_share})"),
            (not o.lr > 0, f"--lr must be > 0 (got {o.lr})"),
            (o.weight_decay < 0, f"--weight-decay must be >= 0 (got {o.weight_decay})"),
            (o.warmup_steps < 0, f"--warmup-steps must be >= 0 (got {o.warmup_steps})"),
            (o.grad_accum < 1, f"--grad-accum must be at least 1 (got {o.grad_accum})"),
            (not o.max_grad_norm > 0, f"--max-grad-norm must be > 0 (got {o.max_grad_norm})"),
            (o.num_epochs < 1, f"--num-epochs must be at least 1 (got {o.num_epochs})"),
            (o.max_steps is not None and o.max_steps < 1, f"--max-steps must be at least 1 (got {o.max_steps})"),
            (not 0.0 <= o.dropout < 1.0, f"--dropout must be in [0, 1) (got {o.dropout})"),
            (r.valid_every < 0, f"--valid-every must be >= 0, 0 = only at the end (got {r.valid_every})"),
            (r.checkpoint_every < 0, f"--checkpoint-every must be >= 0, 0 = none (got {r.checkpoint_every})"),
            (r.log_every < 1, f"--log-every must be at least 1 (got {r.log_every})"),
            (not loss.temperature > 0, f"--temperature must be > 0 (got {loss.temperature})"),
            (min(loss.alpha_ce, loss.alpha_kl, loss.alpha_mse) < 0, "--alpha-ce, --alpha-kl and --alpha-mse must "
             f"be >= 0 (got {loss.alpha_ce}, {loss.alpha_kl}, {loss.alpha_mse})"),
        ]
        wrong = [message for bad, message in problems if bad]
        if wrong:
            from udistil.errors import UdistilError

            raise UdistilError("; ".join(wrong))

    def to_dict(self) -> dict:
        config = asdict(self)
        if config["labeller"] is None:
            del config["labeller"]  # a run labelled by its teacher writes the config it always did
        return config
