"""Stage 3: teacher pseudo-labels with per-token log-probs and entropies (resumable)."""
from udistil.bin._decode_args import add_decode_arguments, decode_options
from udistil.teacher.pseudo_label import pseudo_label
from udistil.teacher.transcriber import Transcriber


def add_arguments(parser):
    add_decode_arguments(parser)
    parser.add_argument("--in", dest="in_path", required=True, help="input CutSet")
    parser.add_argument("--out", required=True, help="output CutSet (skipped if it exists)")
    parser.add_argument("--overwrite", action="store_true", help="redo an existing output")


def run(args):
    from pathlib import Path
    if Path(args.out).exists() and not args.overwrite:
        print(f"{args.out} exists; skipping")
        return 0
    transcriber = Transcriber.from_spec(args.model, decode_options(args))
    pseudo_label(args.in_path, args.out, transcriber, overwrite=args.overwrite)
