"""Stage 4: add one label-free (or oracle) quality score per cut: udistil score FILTER --in --out."""
from udistil.filters import FILTERS
from udistil.models.device import add_device_arguments


def add_arguments(parser):
    parser.add_argument("filter", nargs="?", help="filter to compute (the custom key it writes), or several cheap ones "
                        "comma-separated (confidence,entropy,nll) in one pass; one of: " + ", ".join(sorted(FILTERS)))
    parser.add_argument("--list", action="store_true",
                        help="print every filter's needs, direction, default threshold, label-freeness and "
                        "whole-set flag (tab-separated) and exit")
    parser.add_argument("--in", dest="in_path", help="stage-3 (or already scored) CutSet")
    parser.add_argument("--out", help="output CutSet (skipped if it exists and matches its fingerprint)")
    parser.add_argument("--overwrite", action="store_true", help="redo an existing output")
    parser.add_argument("--redo-stale", action="store_true",
                        help="redo an output (or partial output) made from another input or other filter "
                        "options instead of stopping")
    parser.add_argument("--batch-size", type=int, default=0, help="cuts per scoring batch (0 = the filter's own)")
    parser.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    add_device_arguments(parser, device_help="where model-based filters run (proxy_wer, consistency, "
                         "nll with --nll-lm, pesq with xtts, sonar_sim): auto = cuda when a GPU is visible")
    g = parser.add_argument_group("proxy_wer")
    g.add_argument("--proxy", default="packaged:whisper-tiny.en",
                   help="proxy ASR: Whisper, SeamlessM4T-v2 or wav2vec2/MMS CTC (hub id, dir, packaged:NAME)")
    g.add_argument("--proxy-languages", nargs="+", default=None,
                   help="languages a plain (non-MMS) CTC proxy transcribes, e.g. en")
    g.add_argument("--model-batch-size", type=int, default=8, help="clips per model batch (proxy, consistency)")
    g = parser.add_argument_group("consistency")
    g.add_argument("--model", default=None, help="the teacher used in stage 3 (e.g. exp/models/teacher)")
    g.add_argument("--perturb", default="speed", choices=["speed", "noise", "beam"], help="what to change")
    g.add_argument("--speed-factor", type=float, default=1.1, help="speed perturbation factor")
    g.add_argument("--noise-snr", type=float, default=10.0, help="noise perturbation SNR (dB)")
    g.add_argument("--beam", type=int, default=4, help="beam size for --perturb beam")
    g = parser.add_argument_group("nll / pesq / fusion")
    g.add_argument("--nll-lm", default=None, help="score the pseudo-label with this causal LM instead of the teacher")
    g.add_argument("--tts", default="espeak", choices=["espeak", "xtts"], help="TTS renderer for pesq")
    g.add_argument("--components", nargs="+", default=None,
                   help="fusion components (default: every label-free score present)")
    g.add_argument("--language-prior", type=float, default=0.5,
                   help="uncalibrated fusion: shrink each cut toward its language's mean (0 = off, 1 = language only)")
    g.add_argument("--calibration", default=None,
                   help="fusion: per-language calibration from `udistil fit-fusion` on the labelled dev set "
                        "(without it, the label-free agreement fusion)")


def run(args):
    from pathlib import Path

    from udistil.errors import UdistilError
    from udistil.filters import format_filter_table

    if args.list:
        print(format_filter_table())
        return 0
    if not (args.filter and args.in_path and args.out):
        raise UdistilError("give FILTER, --in and --out (or --list)")

    import torch

    from udistil.filters import create_filter, filter_options
    from udistil.filters.runner import score_cuts, scoring_fingerprint
    from udistil.models.device import placement_from_args
    from udistil.parallel.fingerprint import check_or_write

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    options = {k: v for k, v in vars(args).items() if k not in ("batch_size", "filter")}
    # Only filters that run a model take these (create_filter passes what a filter accepts).
    placement = placement_from_args(args)
    options.update(device=str(placement.device), dtype=placement.dtype_name)
    names = [name for name in args.filter.split(",") if name]
    # Checked before any model loads: a finished, current output costs nothing.
    if Path(args.out).exists() and not args.overwrite and check_or_write(
            args.out, scoring_fingerprint({n: filter_options(n, **options) for n in names}, args.in_path),
            redo=args.redo_stale):
        print(f"{args.out} exists and matches its fingerprint; skipping")
        return 0
    filters = [create_filter(name, **options) for name in names]
    for filt in filters:
        if args.batch_size > 0:
            filt.batch_size = args.batch_size
    score_cuts(filters, args.in_path, args.out, overwrite=args.overwrite, redo_stale=args.redo_stale)
