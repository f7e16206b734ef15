"""Stage 7: decode a CutSet and write DIR/hyps.jsonl and DIR/wer.json."""
from udistil.bin._decode_args import add_decode_arguments, decode_options
from udistil.evaluate.decode import decode_cuts
from udistil.models.device import placement_from_args
from udistil.teacher.transcriber import Transcriber


def add_arguments(parser):
    add_decode_arguments(parser)
    parser.add_argument("--in", dest="in_path", required=True, help="CutSet to decode")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--redo-stale", action="store_true",
                        help="redo a decode (finished or partial) made by another model, input or options; "
                        "without it such a folder stops the run with a message naming it")


def run(args):
    placement = placement_from_args(args)
    transcriber = Transcriber.from_spec(args.model, decode_options(args), placement.device, placement.dtype)
    decode_cuts(args.in_path, args.out, transcriber, redo_stale=args.redo_stale)
