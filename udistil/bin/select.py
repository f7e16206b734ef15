"""Stage 5: keep the cuts a filter trusts (threshold or top fraction); pseudo-label = training text."""
from udistil.select.options import FALLBACK_KEEP_FRACTION


def add_arguments(parser):
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--filter", help="a scored filter column (e.g. proxy_wer), or 'none' for the no-filter set")
    which.add_argument("--filters", help="stage 5 in one process: space-separated filters, each written to "
                       "OUT_DIR/<filter>/cuts.jsonl.gz by its own rule (--thresholds, else the filter's "
                       "default threshold, else --fallback-keep-fraction); one that cannot select is "
                       "reported and skipped")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--threshold", type=float, default=None,
                     help="keep score <= X (higher-is-worse filters) or >= X; default: the filter's own")
    how.add_argument("--keep-fraction", type=float, default=None, help="keep the best P (0-1) of the cuts")
    parser.add_argument("--keep-null", action="store_true", help="keep cuts the filter could not score")
    parser.add_argument("--thresholds", default="",
                        help="with --filters: per-filter thresholds, e.g. 'oracle_wer:80 proxy_wer:80'")
    parser.add_argument("--fallback-keep-fraction", type=float, default=FALLBACK_KEEP_FRACTION,
                        help="with --filters: the kept fraction of filters with no default threshold")
    parser.add_argument("--in", dest="in_path", required=True, help="scored CutSet (stage 4)")
    parser.add_argument("--out", help="output CutSet, e.g. data/select/proxy_wer/cuts.jsonl.gz (with --filter)")
    parser.add_argument("--out-dir", help="output folder, e.g. data/select (with --filters)")


def report(name, out, stats):
    if stats.get("skipped_existing"):
        print(f"{out} exists, skipping (made from the same scores with the same rule)")
    else:
        print(f"{name}: kept {stats['kept']} / {stats['total']} cuts, "
              f"{stats['hours_kept']:.2f} / {stats['hours_total']:.2f} h ({stats['rule']})")


def run(args):
    from udistil.errors import UdistilError
    from udistil.select.selection import parse_thresholds, select_cuts, select_each

    if args.filter is not None:
        if not args.out or args.out_dir or args.thresholds:
            raise UdistilError("--filter takes --out (and --threshold or --keep-fraction); "
                               "--out-dir and --thresholds go with --filters")
        report(args.filter, args.out, select_cuts(args.in_path, args.out, args.filter, args.threshold,
                                                  args.keep_fraction, args.keep_null))
        return 0
    if not args.out_dir or args.out or args.threshold is not None or args.keep_fraction is not None:
        raise UdistilError("--filters takes --out-dir (and --thresholds, --fallback-keep-fraction); "
                           "--out, --threshold and --keep-fraction go with --filter")
    results = select_each(args.in_path, args.out_dir, args.filters.split(), parse_thresholds(args.thresholds),
                          args.fallback_keep_fraction, args.keep_null)
    for name, stats in results.items():
        out = f"{args.out_dir}/{name}/cuts.jsonl.gz"
        if isinstance(stats, str):
            print(f"WARNING: no {out} (students skip it): {stats}")
        else:
            report(name, out, stats)
    # Some subsets missing is normal (an unlabelled set has no oracle_wer); none at all is not.
    if all(isinstance(stats, str) for stats in results.values()):
        raise UdistilError(f"{args.in_path}: no filter selected any cut")
    return 0
