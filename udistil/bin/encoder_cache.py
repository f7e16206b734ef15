"""Stage 6's pre-step: store a frozen student encoder's outputs for one shard of cuts (resumable).

Run as JOB=1:nj jobs (--shard JOB --num-shards nj: every nj-th cut, no split files) over the
training pool and the dev set before any student trains: each job appends to files of its own under CACHE/<encoder identity>/, and
every training rank of every student sharing that encoder then reads them
(udistil/student/encoder_cache.py).  A killed job, run again, encodes only what it had not
finished.  A student whose encoder is trained (fewer encoder layers than the teacher, or
--train-encoder) needs no cache: the job says so and stores nothing.  One that trains only its
top K layers (`--train-encoder-layers K`, given to the jobs as to `udistil distill`) gets the
states of its frozen bottom, under an identity of their own.
"""
from __future__ import annotations


def add_arguments(parser):
    from udistil.models.device import add_device_arguments

    parser.add_argument("--teacher", required=True,
                        help="the teacher (decides, as `udistil distill` does, whether the encoder is frozen)")
    parser.add_argument("--student", required=True, help="student dir from `udistil make-student`")
    parser.add_argument("--in", dest="in_paths", action="append", required=True,
                        help="CutSet to encode (streamed); repeat for several (the pool and the dev set: one "
                             "job, one model load)")
    parser.add_argument("--shard", type=int, default=1,
                        help="this job's share of --in: cuts i with i %% num-shards == shard - 1 (JOB=1:nj)")
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--cache", required=True, help="cache root (`udistil distill --encoder-cache`)")
    parser.add_argument("--name", default=None,
                        help="this job's file name in the cache (default: from --in; two jobs never share one)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="autocast precision, as `udistil distill` uses (auto: bf16/fp16 on GPU, fp32 on CPU)")
    enc = parser.add_mutually_exclusive_group()
    enc.add_argument("--freeze-encoder", dest="freeze_encoder", action="store_true", default=None)
    enc.add_argument("--train-encoder", dest="freeze_encoder", action="store_false")
    parser.add_argument("--train-encoder-layers", type=int, default=None, metavar="K",
                        help="as `udistil distill --train-encoder-layers`: store the frozen bottom's states "
                             "(after the first L-K layers); must be the value the students train with")
    add_device_arguments(parser, dtype=False)


def run(args):
    import contextlib
    import hashlib
    import logging
    from pathlib import Path

    import torch

    from udistil.data.manifests import iter_cuts
    from udistil.errors import UdistilError
    from udistil.models.audio_context import AudioContext
    from udistil.models.spec import load_whisper, resolve_model
    from udistil.student.distributed import process_device
    from udistil.student.encoder_cache import EncoderCache, encoder_identity, fill
    from udistil.student.forward import frozen_bottom_layers
    from udistil.student.trainer import autocast_dtype, trained_encoder_layers

    log = logging.getLogger("udistil.encoder_cache")
    if args.batch_size < 1:
        raise UdistilError(f"--batch-size must be at least 1 (got {args.batch_size})")
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    from transformers import WhisperConfig

    # Decided from the configs alone: a job for a student whose encoder trains loads no weights.
    student_config = WhisperConfig.from_pretrained(args.student)
    trained = trained_encoder_layers(resolve_model(args.teacher), student_config, args.freeze_encoder,
                                     args.train_encoder_layers)
    if trained == student_config.encoder_layers:
        print(f"{args.student}: its encoder is trained, not frozen: nothing to cache")
        return 0
    bottom = frozen_bottom_layers(student_config.encoder_layers, trained)
    student, processor = load_whisper(args.student)
    device = process_device(args.device)
    student = student.to(device, torch.float32).eval()
    context = AudioContext.of(student)
    identity = encoder_identity(student.model.encoder, context, bottom)
    in_paths = [Path(p) for p in args.in_paths]
    if not 1 <= args.shard <= args.num_shards:
        raise UdistilError(f"--shard {args.shard} is not in 1..--num-shards {args.num_shards}")
    inputs = "\n".join(str(p.resolve()) for p in in_paths)
    name = args.name or f"job-{hashlib.sha1(inputs.encode()).hexdigest()[:8]}-{args.shard}of{args.num_shards}"
    cache = EncoderCache(args.cache, identity, {"student_init": str(args.student),
                                                "audio_context": context.to_dict()}, writer_name=name,
                        bottom_layers=bottom)
    dtype = autocast_dtype(args.precision, device)
    autocast = contextlib.nullcontext if dtype == torch.float32 else \
        (lambda: torch.autocast(device.type, dtype=dtype))
    try:
        for in_path in in_paths:
            counts = fill(cache, iter_cuts(in_path), student.model.encoder, processor.feature_extractor,
                          context, device, batch_size=args.batch_size, autocast=autocast,
                          rank=args.shard - 1, world_size=args.num_shards)
            log.info("%s (share %d of %d): %d cuts, %d already cached, %d encoded, %d unreadable -> %s",
                     in_path, args.shard, args.num_shards, counts["cuts"], counts["cached"],
                     counts["computed"], counts["bad_audio"], cache.directory)
    finally:
        cache.close()
    return 0
