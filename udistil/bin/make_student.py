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
    ctx = parser.add_argument_group("audio context (recorded in config.json; every decoding path honours it)")
    ctx.add_argument("--audio-context", choices=("full", "clip"), default="full",
                     help="full: Whisper's 30 s window; clip: the clip's own length plus a margin "
                          "(several times faster on short clips; learnt by distillation)")
    ctx.add_argument("--context-margin", type=int, default=32,
                     help="encoder positions (20 ms each) added after the clip")
    ctx.add_argument("--context-quantum", type=int, default=64,
                     help="context lengths are rounded up to a multiple of this, so clips group "
                          "into batches of one length")


def run(args):
    from udistil.models.audio_context import AudioContext
    from udistil.student.init import make_student, parse_layer_ids

    make_student(
        args.teacher, args.out,
        encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers,
        encoder_layer_ids=parse_layer_ids(args.encoder_layer_ids) if args.encoder_layer_ids else None,
        decoder_layer_ids=parse_layer_ids(args.decoder_layer_ids) if args.decoder_layer_ids else None,
        context=AudioContext(args.audio_context, args.context_margin, args.context_quantum),
    )
