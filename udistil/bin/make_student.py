"""Initialise a student Whisper from a subset of the teacher's layers (stage 6)."""
from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--teacher", required=True,
                        help="teacher: hub id, local transformers dir or packaged:NAME")
    parser.add_argument("--out", required=True, help="output transformers directory")
    parser.add_argument("--encoder-layers", type=int, default=None,
                        help="encoder layers to keep, spread over the teacher's (default: all)")
    parser.add_argument("--decoder-layers", type=int, default=None,
                        help="decoder layers to keep, spread over the teacher's (default: all)")
    parser.add_argument("--encoder-layer-ids", default=None,
                        help="explicit teacher encoder layers, e.g. 0,2,5 (overrides the spread)")
    parser.add_argument("--decoder-layer-ids", default=None,
                        help="explicit teacher decoder layers, e.g. 0,5")


def run(args):
    from udistil.student.init import make_student, parse_layer_ids

    make_student(
        args.teacher, args.out,
        encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers,
        encoder_layer_ids=parse_layer_ids(args.encoder_layer_ids) if args.encoder_layer_ids else None,
        decoder_layer_ids=parse_layer_ids(args.decoder_layer_ids) if args.decoder_layer_ids else None,
    )
