"""Distil a teacher Whisper into a student on pseudo-labelled cuts (stage 6).

Runs as one process, or under `torchrun --nproc_per_node N` for DDP (NCCL on GPUs, one
GPU per process, cuda:LOCAL_RANK; gloo on CPUs).
The best student by dev loss is exported to EXP/best (a transformers directory).
Every default below is the one stage 6 of run.sh trains with (udistil/student/config.py).
"""
from __future__ import annotations

import json


def add_arguments(parser):
    from udistil.models.device import add_device_arguments
    from udistil.student.config import AugmentOptions, DataOptions, LossWeights, OptimOptions, RunOptions

    data_defaults, optim_defaults, run_defaults, loss_defaults = DataOptions(), OptimOptions(), RunOptions(), LossWeights()
    augment_defaults = AugmentOptions()

    io = parser.add_argument_group("models and data")
    io.add_argument("--teacher", required=True, help="teacher: hub id, local dir or packaged:NAME")
    io.add_argument("--student", required=True, help="student dir from `udistil make-student`")
    io.add_argument("--labeller", default=None,
                    help="the model that labelled --train and --dev with stored targets, when not the "
                         "teacher (a later round of self-training: an earlier round's student); the "
                         "targets must be its, and --teacher still decides whether the encoder is frozen")
    io.add_argument("--train", required=True, help="pseudo-labelled training CutSet (teacher_text)")
    io.add_argument("--dev", required=True, help="pseudo-labelled dev CutSet (dev loss, label-free)")
    io.add_argument("--exp", required=True, help="experiment dir: checkpoints, logs, best/")
    io.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --exp")

    data = parser.add_argument_group("batches")
    data.add_argument("--batch-size", type=int, default=data_defaults.batch_size, help="cuts per batch")
    data.add_argument("--max-duration", type=float, default=data_defaults.max_duration,
                      help="also cap the seconds of speech per batch")
    data.add_argument("--num-buckets", type=int, default=data_defaults.num_buckets)
    data.add_argument("--timestamp-share", type=float, default=data_defaults.timestamp_share,
                      help="share of the cuts labelled with timestamps that are trained with them "
                           "(without stored targets; docs/timestamps.md)")
    data.add_argument("--num-workers", type=int, default=data_defaults.num_workers,
                      help="data loader workers (default 2 on GPU, 0 on CPU)")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--lr", type=float, default=optim_defaults.lr, help="peak learning rate")
    optim.add_argument("--weight-decay", type=float, default=optim_defaults.weight_decay)
    optim.add_argument("--average-decay", type=float, default=optim_defaults.average_decay,
                       help="keep an exponential moving average of the trained weights with this decay "
                       "(e.g. 0.99: about the last 100 steps); the dev loss and the exported best/ use "
                       "it (icefall's averaged model); 0 = off")
    optim.add_argument("--dropout", type=float, default=optim_defaults.dropout,
                       help="dropout in the student's decoder while training (residual, attention and "
                       "feed-forward; whisper's own configs have 0); the exported model is unchanged")
    optim.add_argument("--warmup-steps", type=int, default=optim_defaults.warmup_steps)
    optim.add_argument("--schedule", choices=("linear", "cosine", "constant"), default=optim_defaults.schedule)
    optim.add_argument("--grad-accum", type=int, default=optim_defaults.grad_accum, help="batches per optimizer step")
    optim.add_argument("--max-grad-norm", type=float, default=optim_defaults.max_grad_norm)
    optim.add_argument("--num-epochs", type=int, default=optim_defaults.num_epochs)
    optim.add_argument("--max-steps", type=int, default=optim_defaults.max_steps,
                       help="optimizer steps (overrides --num-epochs)")

    loss = parser.add_argument_group("loss: alpha_ce*CE + alpha_kl*T^2*KL(teacher||student)")
    loss.add_argument("--alpha-ce", type=float, default=loss_defaults.alpha_ce)
    loss.add_argument("--alpha-kl", type=float, default=loss_defaults.alpha_kl)
    loss.add_argument("--temperature", type=float, default=loss_defaults.temperature,
                      help="must equal the temperature the stored teacher targets were made at")
    loss.add_argument("--alpha-mse", type=float, default=loss_defaults.alpha_mse,
                      help="weight of the MSE between student and stored teacher decoder states "
                           "(whisper-acft's loss for a short audio context; 0 = off)")
    loss.add_argument("--weight-by", metavar="FILTER", default=loss_defaults.weight_by,
                      help="soft selection: weight each training cut's loss by 1 - score/100 of this "
                           "filter's score (clipped to [0, 1]; a 0-100 higher-is-worse score: fusion, "
                           "proxy_wer, consistency, oracle_wer); a cut without the score gets weight 0; "
                           "the dev loss stays unweighted (default: unweighted)")

    aug = parser.add_argument_group("SpecAugment on the student's input (training only; the teacher "
                                    "always reads clean audio)")
    spec = aug.add_mutually_exclusive_group()
    spec.add_argument("--spec-augment", dest="spec_augment", action="store_true",
                      default=augment_defaults.spec_augment,
                      help="mask the student's log-mel features (frequency and time masks), or, where it "
                           "reads cached or shared frozen encoder states, zero time spans of those states")
    spec.add_argument("--no-spec-augment", dest="spec_augment", action="store_false")
    aug.add_argument("--freq-masks", type=int, default=augment_defaults.freq_masks, help="frequency masks per cut")
    aug.add_argument("--freq-mask-width", type=int, default=augment_defaults.freq_mask_width,
                     help="each up to this many mel bins")
    aug.add_argument("--time-masks", type=int, default=augment_defaults.time_masks, help="time masks per cut")
    aug.add_argument("--time-mask-width", type=int, default=augment_defaults.time_mask_width,
                     help="each up to this many 10 ms frames (half as many encoder positions)")
    aug.add_argument("--time-mask-max-fraction", type=float, default=augment_defaults.time_mask_max_fraction,
                     help="and at most this share of the cut's real frames")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=run_defaults.seed)
    add_device_arguments(run, dtype=False,
                         device_help="auto: cuda when a GPU is visible (cuda:LOCAL_RANK under torchrun), "
                         "else cpu; the weights stay float32, --precision sets the autocast")
    run.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=run_defaults.precision,
                     help="autocast precision: auto = bf16 (or fp16) on GPU, fp32 on CPU")
    enc = run.add_mutually_exclusive_group()
    enc.add_argument("--freeze-encoder", dest="freeze_encoder", action="store_true", default=None,
                     help="do not train the student's encoder (default when it keeps all teacher layers)")
    enc.add_argument("--train-encoder", dest="freeze_encoder", action="store_false",
                     help="train the student's encoder even if it keeps all teacher layers")
    run.add_argument("--train-encoder-layers", type=int, default=run_defaults.train_encoder_layers,
                     metavar="K",
                     help="train only the top K encoder layers and the encoder's final layer norm, the "
                          "rest frozen (0 = frozen, the number of layers = all); with --encoder-cache the "
                          "frozen bottom's states are cached and the top K layers run at every step")
    run.add_argument("--no-share-encoder", dest="share_encoder", action="store_false",
                     help="run teacher and student encoders separately even when identical and frozen")
    run.add_argument("--encoder-cache", default=None,
                     help="a frozen student encoder's outputs are stored here once per cut (and "
                          "shared by every student with the same encoder and audio context); "
                          "training is then decoder-only (with --train-encoder-layers K: the frozen "
                          "bottom's states, and the top K layers still run)")
    emb = run.add_mutually_exclusive_group()
    emb.add_argument("--freeze-embeddings", dest="freeze_embeddings", action="store_true",
                     default=run_defaults.freeze_embeddings,
                     help="do not train the decoder's token embedding (tied to the 51865-way output "
                          "projection) nor its position embedding: a much cheaper step for a small decoder")
    emb.add_argument("--train-embeddings", dest="freeze_embeddings", action="store_false",
                     help="train the decoder's token and position embeddings too")
    run.add_argument("--checkpoint-every", type=int, default=run_defaults.checkpoint_every, help="optimizer steps")
    run.add_argument("--keep-checkpoints", type=int, default=run_defaults.keep_checkpoints)
    run.add_argument("--export-every-epoch", action="store_true",
                     help="also export the student after each epoch to EXP/epochs/epoch-NNN (with its dev "
                          "loss), to decode a learning curve (benchmarks/learning_curve.sh)")
    run.add_argument("--valid-every", type=int, default=run_defaults.valid_every, help="optimizer steps between dev losses")
    run.add_argument("--max-dev-cuts", type=int, default=run_defaults.max_dev_cuts,
                     help="use only N dev cuts, taken at even intervals over the dev manifest, for the "
                     "dev loss (a dev pass is costly on a CPU); 0 = all")
    run.add_argument("--log-every", type=int, default=run_defaults.log_every)
    run.add_argument("--print-config", action="store_true",
                     help="print the resolved configuration (JSON) and exit without training")
    run.add_argument("--stop-after-steps", type=int, default=None,
                     help="checkpoint and exit after this step (e.g. to fit a job time limit); "
                          "the LR schedule still spans the whole run; continue with --resume")


def run(args):
    from udistil.student.config import AugmentOptions, DataOptions, DistillConfig, OptimOptions, RunOptions
    from udistil.student.loss import LossWeights
    from udistil.student.trainer import train

    config = DistillConfig(
        teacher=args.teacher, student=args.student, train=args.train, dev=args.dev, exp=args.exp,
        labeller=args.labeller,
        data=DataOptions(batch_size=args.batch_size, max_duration=args.max_duration,
                         num_buckets=args.num_buckets, num_workers=args.num_workers,
                         timestamp_share=args.timestamp_share),
        optim=OptimOptions(lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
                           schedule=args.schedule, grad_accum=args.grad_accum,
                           max_grad_norm=args.max_grad_norm, num_epochs=args.num_epochs,
                           max_steps=args.max_steps, dropout=args.dropout,
                           average_decay=args.average_decay),
        run=RunOptions(seed=args.seed, device=args.device, precision=args.precision,
                       checkpoint_every=args.checkpoint_every,
                       keep_checkpoints=args.keep_checkpoints, export_every_epoch=args.export_every_epoch,
                       valid_every=args.valid_every, max_dev_cuts=args.max_dev_cuts or None,
                       log_every=args.log_every, freeze_encoder=args.freeze_encoder,
                       train_encoder_layers=args.train_encoder_layers,
                       share_encoder=args.share_encoder, stop_after_steps=args.stop_after_steps,
                       encoder_cache=args.encoder_cache, freeze_embeddings=args.freeze_embeddings,
                       resume=args.resume),
        loss=LossWeights(alpha_ce=args.alpha_ce, alpha_kl=args.alpha_kl, temperature=args.temperature,
                         alpha_mse=args.alpha_mse, weight_by=args.weight_by),
        augment=AugmentOptions(spec_augment=args.spec_augment, freq_masks=args.freq_masks,
                               freq_mask_width=args.freq_mask_width, time_masks=args.time_masks,
                               time_mask_width=args.time_mask_width,
                               time_mask_max_fraction=args.time_mask_max_fraction),
    )
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=1, sort_keys=True))
        return
    train(config)
