"""Stage 3: teacher pseudo-labels with per-token log-probs and entropies (resumable)."""
from udistil.bin._decode_args import add_decode_arguments, decode_options
from udistil.models.device import placement_from_args
from udistil.teacher.pseudo_label import pseudo_label
from udistil.student.config import LossWeights
from udistil.teacher.kd_targets import TargetSpec
from udistil.teacher.transcriber import Transcriber


def add_arguments(parser):
    add_decode_arguments(parser)
    parser.add_argument("--in", dest="in_path", required=True, help="input CutSet")
    parser.add_argument("--out", required=True, help="output CutSet (skipped if it exists)")
    parser.add_argument("--overwrite", action="store_true", help="redo an existing output")
    kd = parser.add_argument_group("distillation targets (the teacher computed once, for stage 6)")
    kd.add_argument("--targets-dir", default=None,
                    help="store the teacher's per-step top-k distributions (and decoder states) "
                         "here, in lhotse array storage attached to each cut; turns packing off")
    kd.add_argument("--targets-topk", type=int, default=TargetSpec.topk,
                    help="tokens kept per step; the rest of the mass is kept as one number")
    kd.add_argument("--targets-temperature", type=float, default=TargetSpec.temperature,
                    help="the distillation temperature T the log-probabilities are stored at")
    kd.add_argument("--targets-alpha-mse", type=float, default=LossWeights.alpha_mse,
                    help="the --alpha-mse the students will train with (default: `udistil distill`'s): "
                         "above 0, the teacher decoder's "
                         "last hidden states are stored too (the MSE's targets; 5/6 of the bytes per "
                         "token for a large-v3 teacher); at 0 they are not, and a later --alpha-mse > 0 "
                         "run refuses the store")
    kd.add_argument("--no-targets-hidden", action="store_true",
                    help="never store the decoder's hidden states, whatever --targets-alpha-mse says")
    parser.add_argument("--redo-stale", action="store_true",
                        help="redo an output (or partial output) made from another input, teacher or options "
                        "instead of stopping")


def run(args):
    from pathlib import Path

    from udistil.parallel.fingerprint import check_or_write
    from udistil.teacher.pseudo_label import labelling_fingerprint

    options = decode_options(args)
    placement = placement_from_args(args)
    if args.targets_dir:
        import dataclasses

        options = dataclasses.replace(options, targets=TargetSpec(
            topk=args.targets_topk, temperature=args.targets_temperature,
            keep_hidden=args.targets_alpha_mse > 0 and not args.no_targets_hidden))
    # Checked before loading the teacher: a finished, current shard costs no model load.
    if Path(args.out).exists() and not args.overwrite and check_or_write(
            args.out, labelling_fingerprint(args.in_path, args.model, options, args.targets_dir,
                                            placement.dtype), redo=args.redo_stale):
        print(f"{args.out} exists and matches its fingerprint; skipping")
        return 0
    transcriber = Transcriber.from_spec(args.model, options, placement.device, placement.dtype)
    pseudo_label(args.in_path, args.out, transcriber, overwrite=args.overwrite,
                 targets_dir=args.targets_dir, redo_stale=args.redo_stale)
