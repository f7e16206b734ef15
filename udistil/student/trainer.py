"""The distillation training loop (stage 6): `train(DistillConfig) -> summary dict`.

One optimizer step = `grad_accum` batches.  After each step: metrics (TensorBoard,
`EXP/log/metrics.jsonl`, tqdm), the dev loss every `valid_every` steps (the best student
is exported to `EXP/best`, a transformers directory), and a checkpoint every
`checkpoint_every` steps (last `keep_checkpoints` kept).  `resume=True` continues from the
newest checkpoint on exactly the loss curve the killed run was on: weights, optimizer,
scheduler, grad scaler, random generators and the sampler position are all restored.
Under `torchrun` the student is wrapped in DistributedDataParallel; the lhotse sampler
gives each rank its own batches.

The teacher is computed once: when the pseudo-labelled cuts carry the teacher's stored
targets (stage 3 with --targets-dir; teacher/kd_targets.py), the teacher is never loaded,
only identified (its store must come from this very teacher).  The student runs at its own
audio context (models/audio_context.py).  A frozen student encoder with --encoder-cache
is run once per cut and stored (encoder_cache.py), before the first step (with
--train-encoder-layers K only its frozen bottom is; the top K layers run at every step): what the sharded
`udistil encoder-cache` jobs left out, every rank encodes its share of, then all ranks read
the cache, so training is decoder-only in every epoch, on every rank, for every student
sharing those weights.  Cuts without stored targets fall back to the live teacher at every
step (the old path), which the log says.

The manifests are streamed (student/data.py's ManifestCuts), never listed, so a rank's
memory does not grow with the training pool.  Checkpoints hold what training changes:
the frozen weights (a frozen encoder, frozen embeddings) are referenced by the student's
init directory and a digest checked on resume, not copied into every checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from udistil.errors import UdistilError
from udistil.student import checkpoint as ckpt
from udistil.student.config import DistillConfig
from udistil.student.data import DistillDataset, LabelEncoder, ManifestCuts, count_usable, make_loader
from udistil.student.distributed import DistEnv, StopSignal, init_distributed, shutdown_distributed
from udistil.student.forward import (DistillForward, StudentForward, encoders_identical,
                                     frozen_bottom_layers, frozen_encoder_parts_to_eval,
                                     set_encoder_training, unwrap)
from udistil.student.loss import StoredTeacher, distillation_loss
from udistil.student.optim import make_optimizer, make_scheduler

log = logging.getLogger(__name__)


def train(config: DistillConfig) -> dict:
    """Run (or resume) a distillation; returns the summary also written to EXP/training_summary.json."""
    env = init_distributed(config.run.device)
    try:
        with StopSignal() as stop:
            trainer = Trainer(config, env)
            trainer.stop = stop
            return trainer.fit()
    finally:
        shutdown_distributed()


class Preempted(UdistilError):
    """SIGTERM stopped training after a checkpoint; --resume continues exactly there."""


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    except KeyError:
        raise UdistilError(f"unknown --precision {precision!r}; choose auto, fp32, bf16 or fp16") from None


def trained_encoder_layers(teacher_dir, student_config, freeze_option: bool | None,
                           layers_option: int | None = None) -> int:
    """How many top encoder layers the student trains: 0 = frozen, L = all (the one rule for
    training and for building the encoder cache).  --train-encoder-layers K when given;
    else --freeze-encoder (0) / --train-encoder (L); else frozen when the student keeps every
    teacher encoder layer, all trained when it keeps fewer."""
    from udistil.student.forward import check_trained_encoder_layers

    n_layers = student_config.encoder_layers
    if layers_option is not None:
        check_trained_encoder_layers(layers_option, n_layers)
        if freeze_option is True and layers_option != 0:
            raise UdistilError(f"--freeze-encoder and --train-encoder-layers {layers_option} disagree; give one")
        if freeze_option is False and layers_option != n_layers:
            raise UdistilError(f"--train-encoder trains all {n_layers} encoder layers, --train-encoder-layers "
                               f"{layers_option} only the top ones; give one")
        return layers_option
    if freeze_option is not None:
        return 0 if freeze_option else n_layers
    from transformers import WhisperConfig

    keeps_all = n_layers == WhisperConfig.from_pretrained(teacher_dir).encoder_layers
    return 0 if keeps_all else n_layers


def set_decoder_dropout(decoder, p: float) -> int:
    """Set every dropout rate of a HF Whisper decoder (its modules read `dropout`,
    `activation_dropout` and, in attention, `dropout` as floats at each forward) to p, for
    training only: config.json, hence the exported model, keeps its own.  Returns how many
    rates were set (a transformers version that renamed them would set none: an error).
    `p` is in [0, 1): DistillConfig checks --dropout before anything loads."""
    changed = 0
    for module in decoder.modules():
        for attr in ("dropout", "activation_dropout"):
            if isinstance(getattr(module, attr, None), float):
                setattr(module, attr, p)
                changed += 1
    if not changed:
        raise UdistilError("--dropout: this transformers version's Whisper decoder has no dropout rates to set")
    return changed


class Trainer:
    def __init__(self, config: DistillConfig, env: DistEnv):
        from udistil.models.audio_context import AudioContext
        from udistil.models.spec import load_whisper, resolve_model

        self.config, self.env = config, env
        self.exp = Path(config.exp)
        run = config.run
        self._check_fresh_or_resume()
        seed_everything(run.seed + env.rank)

        # Streamed, never listed: counted once here, then read anew by each pass.
        weight_by = config.loss.weight_by
        if weight_by:
            from udistil.student.cut_weights import check_weight_filter

            check_weight_filter(weight_by)
        train_counts = count_usable(config.train, score_key=weight_by)
        if weight_by:
            self._check_weight_scores(train_counts)
        dev_counts = count_usable(config.dev)
        train_cuts = ManifestCuts(config.train).lazy()
        dev_cuts = ManifestCuts(config.dev, pick=run.max_dev_cuts, usable=dev_counts.usable).lazy()
        n_dev = min(dev_counts.usable, run.max_dev_cuts or dev_counts.usable)
        teacher_dir = resolve_model(config.teacher)
        labeller_dir = resolve_model(config.labeller) if config.labeller else teacher_dir
        self.stored_teacher = self._stored_or_live(train_counts, dev_counts)
        if config.labeller and not self.stored_teacher:
            # The live teacher would be --teacher, not the model whose labels these are.
            raise UdistilError(f"{config.train} / {config.dev}: --labeller {config.labeller} needs the "
                               "distillation targets it stored when labelling (pseudo-label --targets-dir)")
        self.teacher = None
        if not self.stored_teacher:
            self.teacher, _ = load_whisper(teacher_dir)
            self.teacher = self.teacher.to(env.device, torch.float32).eval().requires_grad_(False)
        self.student, self.processor = load_whisper(config.student)
        self.student = self.student.to(env.device, torch.float32)
        if config.optim.dropout:
            set_decoder_dropout(self.student.model.decoder, config.optim.dropout)
        self.context = AudioContext.of(self.student)
        self._choose_encoder_mode(teacher_dir)
        self._train_mode()

        self.dtype = autocast_dtype(run.precision, env.device)
        self._frozen_digest = None
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=self.dtype == torch.float16)
        self.optimizer = make_optimizer(self.student, config.optim.lr, config.optim.weight_decay)
        self.average = None
        if config.optim.average_decay:
            from udistil.student.averaging import WeightAverage

            self.average = WeightAverage(self.student, config.optim.average_decay)

        tokenizer = self.processor.tokenizer
        gen = self.student.generation_config
        labels = LabelEncoder(tokenizer, multilingual=bool(getattr(gen, "is_multilingual", True)),
                              max_length=self.student.config.max_target_positions,
                              leading_space=config.data.leading_space)
        self.spec_augment = None
        if config.augment.spec_augment:
            from udistil.student.augment import SpecAugment

            self.spec_augment = SpecAugment(config.augment, run.seed)
        self.encoder_cache = self._open_encoder_cache()
        self.encoder_forwards = 0  # training batches whose encoder ran from the features (no cached states)
        if self.encoder_cache is not None:
            self._fill_encoder_cache(train_cuts, dev_cuts)
        opts = config.data
        workers = opts.num_workers if opts.num_workers is not None else (2 if env.device.type == "cuda" else 0)

        def dataset(source, cuts, weight_by=None):
            targets = None
            if self.stored_teacher:
                from udistil.models.identity import model_identity
                from udistil.student.stored_targets import StoredTargets

                targets = StoredTargets(model_identity(labeller_dir), config.loss.temperature, source,
                                        want_hidden=config.loss.alpha_mse > 0)
                targets.check(cuts)
            return DistillDataset(self.processor.feature_extractor, labels, self.context, targets,
                                  self.encoder_cache, source, timestamp_share=opts.timestamp_share,
                                  weight_by=weight_by)

        # The dev loss stays unweighted: it chooses the best checkpoint.
        self.train_loader = make_loader(train_cuts, dataset(config.train, train_cuts, weight_by), opts.batch_size,
                                        opts.max_duration, shuffle=True, seed=run.seed,
                                        num_workers=workers, num_buckets=opts.num_buckets,
                                        num_cuts=train_counts.usable)
        self.dev_loader = make_loader(dev_cuts, dataset(config.dev, dev_cuts), opts.batch_size,
                                      opts.max_duration, shuffle=False, seed=run.seed,
                                      num_workers=workers, num_buckets=opts.num_buckets, num_cuts=n_dev)
        self.steps_per_epoch = self._steps_per_epoch()
        optim = config.optim
        self.total_steps = optim.max_steps or optim.num_epochs * self.steps_per_epoch
        self.scheduler = make_scheduler(self.optimizer, optim.warmup_steps, self.total_steps,
                                        optim.schedule)

        # Position in training (what a checkpoint restores).
        self.step, self.epoch, self.batches_done = 0, 0, 0
        self.best_dev_loss = float("inf")
        self.skipped = Counter()
        self.epoch_weights = Counter()  # --weight-by, this epoch: weight sum, cuts, cuts without a score
        self.weight_log: list[dict] = []  # one row per epoch
        if run.resume:
            self._resume()
        self.student_forward = StudentForward(self.student, trained_encoder_layers=self.trained_encoder_layers)
        if env.distributed:
            # Built after loading a checkpoint: DDP broadcasts rank 0's weights at construction.
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.student_forward, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
        else:
            self.model = self.student_forward
        self.forward = None
        if self.teacher is not None:
            self.forward = DistillForward(self.teacher, self.model, self.frozen_encoder, self.share_encoder)
        self.writer = None
        if env.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.exp / "tensorboard"))
            (self.exp / "log").mkdir(parents=True, exist_ok=True)
            # Rows logged after the checkpoint we start from (all rows, when starting afresh)
            # belong to a killed run and are redone now.
            for name in ("metrics.jsonl", "dev.jsonl"):
                truncate_metrics(self.exp / "log" / name, self.step)
            from udistil.data.manifests import write_json_atomic

            write_json_atomic(config.to_dict(), self.exp / "config.json")

    # ----- set-up -----------------------------------------------------------------------

    def _check_fresh_or_resume(self) -> None:
        if not self.config.run.resume and ckpt.latest_checkpoint(self.exp) is not None:
            raise UdistilError(f"{self.exp}: holds checkpoints of an earlier run; pass --resume "
                               "to continue it, or choose another --exp")

    def _stored_or_live(self, train_counts, dev_counts) -> bool:
        """True when every cut carries stored teacher targets; False when none does."""
        with_targets = train_counts.with_targets + dev_counts.with_targets
        total = train_counts.usable + dev_counts.usable
        if with_targets == total:
            return True
        if with_targets == 0:
            if self.env.is_main:
                log.warning("no stored teacher targets in %s / %s: the teacher runs live at every "
                            "step (label with `udistil pseudo-label --targets-dir` to compute it once)",
                            self.config.train, self.config.dev)
            return False
        raise UdistilError(f"{self.config.train} / {self.config.dev}: {with_targets} of {total} cuts "
                           "carry stored teacher targets; label all of them in one stage-3 run")

    def _check_weight_scores(self, counts) -> None:
        name = self.config.loss.weight_by
        if counts.with_score == 0:
            raise UdistilError(f"{self.config.train}: no cut has a {name} score to weight its loss by; "
                               f"run `udistil score {name}` first, or train without --weight-by")
        if counts.with_score < counts.usable and self.env.is_main:
            log.warning("%s: %d of %d cuts have no %s score: weight 0 (read, but they add nothing to the loss)",
                        self.config.train, counts.usable - counts.with_score, counts.usable, name)

    def _choose_encoder_mode(self, teacher_dir) -> None:
        from transformers import WhisperConfig

        t_layers = WhisperConfig.from_pretrained(teacher_dir).encoder_layers
        s_layers = self.student.config.encoder_layers
        run = self.config.run
        self.trained_encoder_layers = trained_encoder_layers(teacher_dir, self.student.config,
                                                             run.freeze_encoder, run.train_encoder_layers)
        self.frozen_encoder = self.trained_encoder_layers == 0
        set_encoder_training(self.student, self.trained_encoder_layers)
        if self.config.run.freeze_embeddings:
            # The token embedding is tied to the output projection (51865 x d): freezing it
            # drops the largest weight gradient and optimizer state of a small decoder.
            decoder = self.student.model.decoder
            decoder.embed_tokens.weight.requires_grad_(False)
            decoder.embed_positions.weight.requires_grad_(False)
        # Sharing one encoder pass with a live teacher needs the same weights and the same
        # (full) context; a clip-context student sees a shorter input than the teacher.
        self.share_encoder = (self.teacher is not None and self.frozen_encoder
                              and self.config.run.share_encoder and not self.context.is_dynamic
                              and encoders_identical(self.teacher, self.student))
        if self.env.is_main:
            log.info("student encoder %d layers (teacher %d): %s%s; %s; teacher %s", s_layers, t_layers,
                     self._encoder_training_words(),
                     "; computed once per batch for teacher and student" if self.share_encoder else "",
                     self.context.describe(),
                     "from its stored targets (never run)" if self.stored_teacher else "live")

    def _encoder_training_words(self) -> str:
        n_layers, trained = self.student.config.encoder_layers, self.trained_encoder_layers
        if trained == 0:
            return "frozen"
        if trained == n_layers:
            return f"all {n_layers} layers trained"
        return f"top {trained} of {n_layers} layers (and layer_norm) trained, the rest frozen"

    def _open_encoder_cache(self):
        """The cache of the frozen part's output: the whole encoder's when it is frozen, the
        bottom layers' when only the top trains; none when all of it trains."""
        root = self.config.run.encoder_cache
        if not root or self.trained_encoder_layers == self.student.config.encoder_layers:
            return None
        from udistil.student.encoder_cache import EncoderCache, encoder_identity

        bottom = frozen_bottom_layers(self.student.config.encoder_layers, self.trained_encoder_layers)
        identity = encoder_identity(self.student.model.encoder, self.context, bottom)
        return EncoderCache(root, identity, {"student_init": str(self.config.student),
                                             "audio_context": self.context.to_dict()},
                            bottom_layers=bottom)

    def _fill_encoder_cache(self, train_cuts, dev_cuts) -> None:
        """Complete the cache before the first step: each rank encodes its share of the cuts
        no job has cached yet (into files of its own), then every rank reads all of it."""
        import itertools

        from udistil.student.encoder_cache import fill

        started = time.time()
        counts = fill(self.encoder_cache, itertools.chain(train_cuts, dev_cuts), self.student.model.encoder,
                      self.processor.feature_extractor, self.context, self.env.device,
                      batch_size=self.config.data.batch_size, rank=self.env.rank,
                      world_size=self.env.world_size, autocast=self._autocast)
        self.env.barrier()
        self.encoder_cache.refresh()
        self.cache_built = self.env.all_sum([counts["computed"]])[0]
        if self.env.is_main:
            log.info("encoder cache %s: %d outputs computed before training (%.0f s), %d entries",
                     self.encoder_cache.directory, self.cache_built, time.time() - started,
                     len(self.encoder_cache))

    def _steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch on this rank (counted on the sampler; no audio read)."""
        sampler = self.train_loader.sampler
        sampler.set_epoch(0)
        n_batches = sum(1 for _ in sampler)
        if n_batches == 0:
            raise UdistilError(f"{self.config.train}: no training batch could be formed")
        return -(-n_batches // self.config.optim.grad_accum)

    def _resume(self) -> None:
        path = ckpt.latest_checkpoint(self.exp)
        if path is None:
            log.info("%s: no checkpoint yet; starting from the beginning", self.exp)
            return
        state, rng = ckpt.load_checkpoint(path, self.env.rank)
        self._load_weights(path, state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.average is not None:
            if "average" not in state:
                raise UdistilError(f"{path}: has no weight average; resume without --average-decay, "
                                   "or start a new --exp")
            self.average.load_state_dict(state["average"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batches_done, self.best_dev_loss = state["batches_done"], state["best_dev_loss"]
        self.skipped = Counter(state.get("skipped", {}))
        # Saved summed over ranks: rank 0 carries the sums on, so all_sum counts them once.
        self.epoch_weights = Counter(state.get("epoch_weights", {}) if self.env.is_main else {})
        self.weight_log = list(state.get("weight_log", []))
        if rng is not None:
            ckpt.set_rng_state(rng)
        if self.env.is_main:
            log.info("resumed from %s: step %d, epoch %d, %d batches into it", path, self.step,
                     self.epoch, self.batches_done)

    def _load_weights(self, path, state: dict) -> None:
        """A full checkpoint (older udistil) loads as it is; a lean one takes its frozen
        weights from the student's init directory, checked against the recorded digest."""
        frozen = state.get("frozen")
        if frozen is None:
            self.student.load_state_dict(state["model"])
            return
        current = self._frozen_reference()
        if current["names"] != frozen["names"] or current["digest"] != frozen["digest"]:
            raise UdistilError(
                f"{path}: was written with frozen weights ({len(frozen['names'])} tensors, digest "
                f"{frozen['digest']}, from {frozen['student_init']}) that this run's student "
                f"{self.config.student} does not have ({len(current['names'])} tensors, digest "
                f"{current['digest']}): resume with the same --student and freezing options")
        missing, unexpected = self.student.load_state_dict(state["model"], strict=False)
        if unexpected or set(missing) != set(frozen["names"]):
            raise UdistilError(f"{path}: its weights do not fit this student (missing "
                               f"{sorted(set(missing) - set(frozen['names']))[:5]}, unexpected {unexpected[:5]})")

    def _train_mode(self) -> None:
        self.student.train()
        # A frozen encoder (or frozen bottom) is a fixed feature extractor: no dropout in it.
        frozen_encoder_parts_to_eval(self.student)

    # ----- one batch / one step ---------------------------------------------------------

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.env.device.type, dtype=self.dtype)

    def batch_loss(self, batch, augment: bool = False):
        """The batch's loss; `augment` (training only, never the dev pass): SpecAugment on what
        the student alone reads, when --spec-augment is on."""
        device = self.env.device
        decoder_input_ids = batch["decoder_input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        features = batch.get("input_features")
        features = features.to(device, non_blocking=True) if features is not None else None
        weights = batch.get("cut_weights")
        weights = weights.to(device, non_blocking=True) if weights is not None else None
        masks = self.spec_augment.for_batch(batch, self.epoch) if augment and self.spec_augment else None
        if self.forward is not None:
            with self._autocast():
                # The teacher reads the clean features; a shared encoder's states are masked for the student only.
                live = self.forward(features, decoder_input_ids, batch["positions"],
                                    student_features=masks.features(features) if masks and not self.share_encoder else None,
                                    student_states=masks.states if masks and self.share_encoder else None)
            return distillation_loss(live.student_logits, live.teacher_logits, labels, self.config.loss,
                                     student_hidden=live.student_hidden, teacher_hidden=live.teacher_hidden,
                                     cut_weights=weights)
        states = batch.get("encoder_states")
        states = states.to(device, non_blocking=True) if states is not None else None
        if masks is not None:
            # Cached states are a frozen encoder's output: time masks on a copy of them.
            states = masks.states(states) if states is not None else None
            features = masks.features(features) if states is None else None
        with self._autocast():
            student_logits, hidden, encoded = self.model(decoder_input_ids, batch["positions"],
                                                         input_features=features, encoder_states=states)
        if states is None:
            self.encoder_forwards += 1
        # Never store an encoding of masked features: the cache holds the clean output.
        if self.encoder_cache is not None and states is None and masks is None:
            rows = encoded.detach().float().cpu().numpy()
            for cut_id, row in zip(batch["cut_ids"], rows):
                self.encoder_cache.put(cut_id, batch["positions"], row)
        stored = StoredTeacher(batch["kd_ids"].to(device), batch["kd_logprobs"].to(device),
                               batch["kd_mask"].to(device),
                               batch["kd_hidden"].to(device) if "kd_hidden" in batch else None)
        return distillation_loss(student_logits, None, labels, self.config.loss, stored=stored,
                                 student_hidden=hidden, cut_weights=weights)

    def _optimizer_step(self) -> float:
        self.last_lr = self.scheduler.get_last_lr()[0]  # the LR this step uses (logged)
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.student.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.optim.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    # ----- the loop ---------------------------------------------------------------------

    def fit(self) -> dict:
        from tqdm import tqdm

        run, optim = self.config.run, self.config.optim
        started = time.time()
        progress = tqdm(total=self.total_steps, initial=self.step, desc="distill", unit="step",
                        disable=not self.env.is_main, dynamic_ncols=True)
        stop_at = min(self.total_steps, run.stop_after_steps or self.total_steps)
        while self.step < stop_at and (optim.max_steps or self.epoch < optim.num_epochs):
            finished_epoch = self._run_epoch(stop_at, progress)
            if finished_epoch:
                self._log_epoch_weights()
                self.epoch += 1
                self.batches_done = 0
                if run.export_every_epoch:
                    self._export_epoch()
        progress.close()
        # Done when the step budget is spent, or (without --max-steps) every epoch was run:
        # later epochs may form a batch fewer than the first one, which set total_steps.
        out_of_epochs = not optim.max_steps and self.epoch >= optim.num_epochs
        stopped_early = self.step < self.total_steps and not out_of_epochs
        if self._last_valid_step != self.step:
            self._validate()
        if self._last_checkpoint_step != self.step:
            self._checkpoint()
        summary = {"steps": self.step, "total_steps": self.total_steps, "epoch": self.epoch,
                   "finished": not stopped_early, "best_dev_loss": self.best_dev_loss,
                   "best": str(self.exp / "best"), "skipped_cuts": dict(self.skipped),
                   "frozen_encoder": self.frozen_encoder, "shared_encoder": self.share_encoder,
                   "trained_encoder_layers": self.trained_encoder_layers,
                   "encoder_layers": self.student.config.encoder_layers,
                   "teacher": "stored" if self.stored_teacher else "live",
                   "audio_context": self.context.to_dict(),
                   "encoder_cache": self._cache_summary(),
                   "loss_weights": ({"filter": self.config.loss.weight_by, "epochs": self.weight_log}
                                    if self.config.loss.weight_by else None),
                   "encoder_forwards": int(self.env.all_sum([self.encoder_forwards])[0]),
                   "rank_weight_digests": self._rank_weight_digests(),
                   "wall_s": round(time.time() - started, 1), "world_size": self.env.world_size,
                   "device": str(self.env.device)}
        if self.env.is_main:
            from udistil.data.manifests import write_json_atomic

            write_json_atomic(summary, self.exp / "training_summary.json")
            if self.skipped:
                log.warning("skipped cuts while training: %s", dict(self.skipped))
            log.info("%s after %d steps (%.0f s); best dev loss %.4f -> %s",
                     "finished" if not stopped_early else "stopped", self.step, summary["wall_s"],
                     self.best_dev_loss, self.exp / "best")
            self.writer.close()
        return summary

    def _log_epoch_weights(self) -> None:
        """--weight-by: the epoch's mean cut weight and its cuts without a score (all ranks)."""
        if not self.config.loss.weight_by:
            return
        total, cuts, unscored = self._summed_epoch_weights()
        self.epoch_weights = Counter()
        row = {"epoch": self.epoch, "mean_weight": total / cuts if cuts else 0.0, "cuts": int(cuts),
               "unscored_cuts": int(unscored)}
        self.weight_log.append(row)
        if self.env.is_main:
            log.info("epoch %d: mean loss weight %.3f by %s over %d cuts (%d without a score: weight 0)",
                     self.epoch, row["mean_weight"], self.config.loss.weight_by, row["cuts"], row["unscored_cuts"])
            self.writer.add_scalar("train/mean_loss_weight", row["mean_weight"], self.step)

    def _summed_epoch_weights(self) -> list[float]:
        """Weight sum, cuts and cuts without a score of this epoch so far, over all ranks."""
        return self.env.all_sum([self.epoch_weights["weight"], self.epoch_weights["cuts"],
                                 self.epoch_weights["unscored"]])

    def _cache_summary(self) -> dict | None:
        """Summed over ranks: outputs computed (before training and since) and read back."""
        if self.encoder_cache is None:
            return None
        computed, loaded = self.env.all_sum([self.encoder_cache.computed, self.encoder_cache.loaded])
        return {"dir": str(self.encoder_cache.directory), "computed": int(computed),
                "built_before_training": int(self.cache_built), "loaded": int(loaded)}

    def _rank_weight_digests(self) -> list[str]:
        """Every rank's digest of its student weights (all equal when DDP kept them in step)."""
        digest = weights_digest(unwrap(self.student).state_dict())
        if not self.env.distributed:
            return [digest]
        import torch.distributed as dist

        out = [None] * self.env.world_size
        dist.all_gather_object(out, digest)
        return out

    stop = None  # a StopSignal (train() sets it)
    _last_valid_step = -1
    _last_dev_loss = float("inf")
    _last_checkpoint_step = -1

    def _run_epoch(self, stop_at: int, progress) -> bool:
        """Train from the sampler position to the end of the epoch (True) or to `stop_at` (False)."""
        env, accum = self.env, self.config.optim.grad_accum
        self.train_loader.sampler.set_epoch(self.epoch, skip=self.batches_done)
        batches = iter(self.train_loader)
        upcoming = next(batches, None)
        sums, micro = Counter(), 0
        while env.all_true(upcoming is not None):
            batch, upcoming = upcoming, next(batches, None)
            is_last = not env.all_true(upcoming is not None)
            self.batches_done += 1
            self.skipped.update(batch["skipped"].counts)
            micro += 1
            sync = micro == accum or is_last
            # Every rank must run the same number of forward/backward passes under DDP,
            # so a batch whose cuts were all unusable on any rank is dropped on all of them.
            if env.all_true("labels" in batch):
                no_sync = self.model.no_sync() if env.distributed and not sync else contextlib.nullcontext()
                with no_sync:
                    parts = self.batch_loss(batch, augment=True)
                    self.scaler.scale(parts.total / accum).backward()
                sums.update({"loss": float(parts.total.detach()) * parts.n_tokens, "ce": float(parts.ce) * parts.n_tokens,
                             "kl": float(parts.kl) * parts.n_tokens, "tokens": parts.n_tokens,
                             "cuts": len(batch["cut_ids"])})
                if parts.mse is not None:
                    sums["mse"] += float(parts.mse) * parts.n_tokens
                if "cut_weights" in batch:
                    self.epoch_weights.update({"weight": float(batch["cut_weights"].sum()),
                                               "cuts": len(batch["cut_ids"]), "unscored": batch["unscored_cuts"]})
            if not sync:
                continue
            grad_norm = self._optimizer_step()
            if self.average is not None:
                self.average.update(unwrap(self.student))
            micro = 0
            self.step += 1
            progress.update(1)
            self._after_step(sums, grad_norm, progress)
            sums = Counter()
            if self.stop is not None and self.stop.requested(env):
                if self._last_checkpoint_step != self.step:
                    self._checkpoint()
                raise Preempted(f"{self.exp}: stopped by SIGTERM after step {self.step} (checkpoint "
                                "written); rerun with --resume to continue exactly there")
            if self.step >= stop_at:
                return is_last
        return True

    def _after_step(self, sums: Counter, grad_norm: float, progress) -> None:
        run = self.config.run
        loss, ce, kl, mse, tokens, cuts = self.env.all_sum(
            [sums["loss"], sums["ce"], sums["kl"], sums["mse"], sums["tokens"], sums["cuts"]])
        if self.env.is_main and self.step % run.log_every == 0:
            tokens = max(tokens, 1)
            row = {"step": self.step, "epoch": self.epoch, "loss": loss / tokens, "ce": ce / tokens,
                   "kl": kl / tokens, "lr": self.last_lr, "grad_norm": grad_norm,
                   "tokens": int(tokens), "cuts": int(cuts)}
            if self.config.loss.alpha_mse > 0:
                row["mse"] = mse / tokens
            with open(self.exp / "log" / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            for key in ("loss", "ce", "kl", "mse", "lr", "grad_norm"):
                if key in row:
                    self.writer.add_scalar(f"train/{key}", row[key], self.step)
            progress.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2e}")
        if run.valid_every and self.step % run.valid_every == 0:
            self._validate()
        if run.checkpoint_every and self.step % run.checkpoint_every == 0:
            self._checkpoint()

    def _validate(self) -> float:
        """Token-weighted dev loss over all ranks; exports EXP/best when it improves.  With a
        weight average, both use the averaged weights."""
        with self._evaluated_weights():
            return self._validate_weights()

    def _evaluated_weights(self):
        """The weights dev losses and exports use: the average when averaging, else the live ones."""
        if self.average is None:
            return contextlib.nullcontext()
        return self.average.swapped_in(unwrap(self.student))

    def _validate_weights(self) -> float:
        self.student.eval()
        totals = Counter()
        self.dev_loader.sampler.set_epoch(0)
        # The dev pass must not move the training random streams (exact resume).
        with torch.random.fork_rng(devices=[self.env.device] if self.env.device.type == "cuda" else []):
            with torch.no_grad():
                batches = iter(self.dev_loader)
                while True:
                    batch = next(batches, None)
                    if not self.env.all_true(batch is not None):
                        break
                    if "labels" not in batch:
                        continue
                    parts = self.batch_loss(batch)
                    totals.update({"loss": float(parts.total) * parts.n_tokens, "tokens": parts.n_tokens})
        self._train_mode()
        loss_sum, tokens = self.env.all_sum([totals["loss"], totals["tokens"]])
        dev_loss = loss_sum / tokens if tokens else float("inf")
        self._last_valid_step, self._last_dev_loss = self.step, dev_loss
        improved = dev_loss < self.best_dev_loss
        if improved:
            self.best_dev_loss = dev_loss
        if self.env.is_main:
            self.writer.add_scalar("dev/loss", dev_loss, self.step)
            with open(self.exp / "log" / "dev.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": self.step, "dev_loss": dev_loss, "best": improved}) + "\n")
            log.info("step %d: dev loss %.4f%s", self.step, dev_loss, " (best; exported)" if improved else "")
            if improved:
                ckpt.export_student(unwrap(self.student), self.processor, self.exp / "best",
                                    {"step": self.step, "dev_loss": dev_loss,
                                     "teacher": self.config.teacher, "student_init": self.config.student,
                                     **self._labeller_record()})
        self.env.barrier()
        return dev_loss

    def _export_epoch(self) -> None:
        """EXP/epochs/epoch-NNN: the student after each epoch, with its dev loss, for learning
        curves (`benchmarks/learning_curve.sh` decodes each; icefall's habit of decoding epochs)."""
        dev_loss = self._validate() if self._last_valid_step != self.step else self._last_dev_loss
        if self.env.is_main:
            with self._evaluated_weights():
                ckpt.export_student(unwrap(self.student), self.processor,
                                    self.exp / "epochs" / f"epoch-{self.epoch:03d}",
                                    {"step": self.step, "epoch": self.epoch, "dev_loss": dev_loss,
                                     "teacher": self.config.teacher, "student_init": self.config.student,
                                     **self._labeller_record()})
        self.env.barrier()

    def _labeller_record(self) -> dict:
        """The labeller for an export's metadata, only when it is not the teacher."""
        return {"labeller": self.config.labeller} if self.config.labeller else {}

    def _frozen_names(self) -> list[str]:
        return sorted(n for n, p in unwrap(self.student).named_parameters() if not p.requires_grad)

    def _frozen_reference(self) -> dict:
        """What a lean checkpoint keeps of the frozen weights: their names, where they come
        from (the student's init directory) and a digest that a resume checks."""
        names = self._frozen_names()
        if self._frozen_digest is None:
            state = unwrap(self.student).state_dict()
            self._frozen_digest = weights_digest({n: state[n] for n in names})
        return {"names": names, "digest": self._frozen_digest, "student_init": str(self.config.student)}

    def _checkpoint(self) -> None:
        epoch_weights = {}
        if self.config.loss.weight_by:
            epoch_weights = dict(zip(("weight", "cuts", "unscored"), self._summed_epoch_weights()))
        frozen = self._frozen_reference()
        skip = set(frozen["names"])
        weights = {k: v for k, v in unwrap(self.student).state_dict().items() if k not in skip}
        state = {"model": weights, "frozen": frozen, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "step": self.step, "epoch": self.epoch, "batches_done": self.batches_done,
                 "best_dev_loss": self.best_dev_loss, "skipped": dict(self.skipped),
                 "epoch_weights": epoch_weights, "weight_log": self.weight_log,
                 "config": self.config.to_dict()}
        if self.average is not None:
            state["average"] = self.average.state_dict()
        ckpt.save_checkpoint(self.exp, self.step, state, self.env.rank, self.env.world_size,
                             self.env.barrier)
        if self.env.is_main:
            ckpt.prune_checkpoints(self.exp, self.config.run.keep_checkpoints)
        self._last_checkpoint_step = self.step


def weights_digest(state: dict) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric rows a killed run logged after its last checkpoint (they are redone).

    Written to a temporary file and renamed: a kill here never loses the rows kept."""
    if not path.is_file():
        return
    from udistil.data.manifests import write_text_atomic

    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if line.strip() and json.loads(line)["step"] <= last_step:
                rows.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a kill mid-write
    write_text_atomic("".join(r + "\n" for r in rows), path)
