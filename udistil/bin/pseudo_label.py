"""Stage 3: teacher pseudo-labels with per-token log-probs and entropies (resumable)."""
from udistil.bin._decode_args import add_decode_arguments, decode_options
from udistil.teacher.pseudo_label import pseudo_label
from udistil.teacher.transcriber import Transcriber


def add_arguments(parser):
    add_decode_arguments(parser)
    parser.add_argument("--in", dest="in_path", required=True, help="input CutSet")
    parser.add_argument("--out", required=True, help="output CutSet (skipped if it exists)")
    parser.add_argument("--overwrite", action="store_true", help="redo an existing output")
    parser.add_argument("--redo-stale", action="store_true",
                        help="redo an output (or partial output) made from another input, teacher or options "
                        "instead of stopping")


def run(args):
    from pathlib import Path

    from udistil.parallel.fingerprint import check_or_write
    from udistil.teacher.pseudo_label import labelling_fingerprint

    options = decode_options(args)
    # Checked before loading the teacher: a finished, current shard costs no model load.
    if Path(args.out).exists() and not args.overwrite and check_or_write(
            args.out, labelling_fingerprint(args.in_path, args.model, options), redo=args.redo_stale):
        print(f"{args.out} exists and matches its fingerprint; skipping")
        return 0
    transcriber = Transcriber.from_spec(args.model, options)
    pseudo_label(args.in_path, args.out, transcriber, overwrite=args.overwrite, redo_stale=args.redo_stale)
