"""Decoding options shared by pseudo-label and decode (one definition, one meaning)."""
import torch

from udistil.errors import UdistilError
from udistil.models.device import add_device_arguments
from udistil.teacher.transcriber import TIMESTAMP_MODES, DecodeOptions


def add_timestamp_arguments(parser, default: str = DecodeOptions.timestamps,
                            above: float = DecodeOptions.timestamps_above):
    parser.add_argument("--timestamps", choices=TIMESTAMP_MODES, default=default,
                        help="Whisper's timestamp mode: never (<|notimestamps|>), always, or auto: "
                             "clips longer than --timestamps-above seconds (a window of several "
                             "sentences; without timestamps Whisper tends to stop after the first). "
                             "Labels and transcripts carry the text only (docs/timestamps.md)")
    parser.add_argument("--timestamps-above", type=float, default=above,
                        help="with --timestamps auto: the clip length in seconds above which clips "
                             "are decoded with timestamps")


def add_decode_arguments(parser):
    parser.add_argument("--model", required=True,
                        help="hub id, local transformers dir, or packaged:whisper-base / packaged:whisper-tiny.en")
    parser.add_argument("--batch-size", type=int, default=8, help="windows (or clips) per batch")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy, our fast loop)")
    pack = parser.add_mutually_exclusive_group()
    pack.add_argument("--pack", dest="pack", action="store_true", default=False,
                      help="pack several clips of a language into one 30 s window (greedy only; "
                           "faster labelling, but a clip's label and statistics then depend on its "
                           "neighbours; never used with distillation targets or a clip-context model)")
    pack.add_argument("--no-pack", dest="pack", action="store_false",
                      help="decode one clip per window (the default)")
    parser.add_argument("--budget-per-second", type=float, default=DecodeOptions.budget_per_second,
                        help="token budget per second of audio (stops hallucination early)")
    parser.add_argument("--min-eot-prob", type=float, default=DecodeOptions.min_eot_prob,
                        help="end a transcript only where the model gives end of text at least this "
                             "probability, else take its next best token (0 = off; a student that "
                             "ends early at pauses in recorded speech: docs/experiments.md)")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch CPU threads (0 = torch default; run.sh sets cores / nj)")
    add_timestamp_arguments(parser)
    parser.add_argument("--split-above", type=float, default=DecodeOptions.split_above,
                        help="seconds: a longer clip is cut at its pauses into pieces of at most "
                             "--split-piece seconds, each decoded alone, and labelled with their texts "
                             "joined (0 = never; docs/timestamps.md)")
    parser.add_argument("--split-piece", type=float, default=DecodeOptions.split_piece,
                        help="seconds: the longest piece of a clip cut by --split-above")
    add_device_arguments(parser)


def checked_decode_options(**fields) -> DecodeOptions:
    """DecodeOptions from command-line values; one out of its range is a usage error that
    names it, not a traceback."""
    try:
        return DecodeOptions(**fields)
    except ValueError as e:
        raise UdistilError(f"decoding options: {e}") from e


def decode_options(args) -> DecodeOptions:
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    return checked_decode_options(batch_size=args.batch_size, beam=args.beam, pack=args.pack,
                                  budget_per_second=args.budget_per_second, timestamps=args.timestamps,
                                  timestamps_above=args.timestamps_above, split_above=args.split_above,
                                  split_piece=args.split_piece, min_eot_prob=args.min_eot_prob)
