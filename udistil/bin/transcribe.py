"""Transcribe audio files or directories (wav/flac/mp3/ogg, any length) with a model or an export."""
from __future__ import annotations

from udistil.bin._decode_args import add_timestamp_arguments, checked_decode_options
from udistil.models.device import add_device_arguments
from udistil.teacher.transcriber import DecodeOptions
from udistil.transcribe.output import FORMATS
from udistil.transcribe.runner import TRANSCRIBE_DEFAULTS
from udistil.transcribe.segments import SegmentOptions


def add_arguments(parser) -> None:
    parser.add_argument("paths", metavar="PATH", nargs="+", help="audio files and/or directories")
    parser.add_argument("--model", required=True,
                        help="hub id, local transformers dir, packaged:NAME (torch engine), or a "
                             "CTranslate2 directory from `udistil export` (CTranslate2 engine)")
    parser.add_argument("--language", default=None,
                        help="force this language code; when absent, detected per file")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="text",
                        help="text: PATH<TAB>TEXT per file; jsonl: one object per file with segments; srt")
    parser.add_argument("--output-dir", default=None,
                        help="write one file per input here instead of stdout (needed for SRT of several files)")
    add_device_arguments(parser, dtype_help="torch engine precision: auto = float16 on cuda, float32 "
                         "on cpu (a CTranslate2 export uses --compute-type instead)")
    parser.add_argument("--compute-type", default="default",
                        help="CTranslate2 compute type: default (as exported), int8, int8_float32, "
                             "int8_float16, float16, bfloat16, float32")
    parser.add_argument("--batch-size", type=int, default=8, help="segments per batch")
    ct2, torch_engine = TRANSCRIBE_DEFAULTS["ctranslate2"], TRANSCRIBE_DEFAULTS["torch"]
    parser.add_argument("--beam", type=int, default=None,
                        help=f"beam size (1 = greedy; default: {ct2.beam} for a CTranslate2 export, "
                             f"{torch_engine.beam} for the torch engine)")
    parser.add_argument("--max-segment", type=float, default=None,
                        help="longest segment in seconds when a long file is cut at its pauses (<= 30; "
                             f"default: {ct2.max_segment:g} for a CTranslate2 export, {torch_engine.max_segment:g} "
                             "for the torch engine)")
    parser.add_argument("--keep-pauses", action="store_true",
                        help="decode each segment of a long file with its pauses (by default pauses "
                             "longer than twice 0.2 s are shortened, so a window holds more speech)")
    parser.add_argument("--redecode-missed", type=float, default=SegmentOptions.redecode_missed,
                        help="decode again, in pieces of at most 10 s, speech that a window's timestamped "
                             "sentences leave out when it holds at least this many seconds (0 = never)")
    parser.add_argument("--budget-per-second", type=float, default=DecodeOptions.budget_per_second,
                        help="token budget per second of audio (stops hallucination early)")
    add_timestamp_arguments(parser)
    parser.add_argument("--num-threads", type=int, default=0,
                        help="CPU threads (0 = every CPU this process may use); a CTranslate2 export on the "
                             "CPU runs them as workers of one thread each, decoding batches side by side")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args) -> int:
    from udistil.transcribe.runner import engine_defaults, run_transcribe

    settings = engine_defaults(args.model, args.beam, args.max_segment)

    return run_transcribe(
        args.paths, args.model, language=args.language, fmt=args.fmt, output_dir=args.output_dir,
        device=args.device, dtype=args.dtype, compute_type=args.compute_type, threads=args.num_threads,
        options=checked_decode_options(batch_size=args.batch_size, beam=settings.beam, pack=True,
                                       budget_per_second=args.budget_per_second, timestamps=args.timestamps,
                                       timestamps_above=args.timestamps_above,
                                       split_above=0.0),  # its segments are already cut at pauses (--max-segment)
        segment_options=SegmentOptions(max_seconds=settings.max_segment,
                                       drop_pauses=not args.keep_pauses,
                                       redecode_missed=args.redecode_missed),
        progress=not args.no_progress)
