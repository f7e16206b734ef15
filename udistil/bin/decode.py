"""Stage 7: decode a CutSet and write DIR/hyps.jsonl and DIR/wer.json."""
from udistil.bin._decode_args import add_decode_arguments, decode_options
from udistil.evaluate.decode import decode_cuts
from udistil.models.device import placement_from_args
from udistil.teacher.transcriber import Transcriber


def add_arguments(parser):
    add_decode_arguments(parser)
    parser.add_argument("--in", dest="in_path", required=True, help="CutSet to decode")
    parser.add_argument("--out", required=True, help="output directory")


def run(args):
    placement = placement_from_args(args)
    transcriber = Transcriber.from_spec(args.model, decode_options(args), placement.device, placement.dtype)
    decode_cuts(args.in_path, args.out, transcriber)
