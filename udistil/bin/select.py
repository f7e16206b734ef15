"""Stage 5: keep the cuts a filter trusts (threshold or top fraction); pseudo-label = training text."""


def add_arguments(parser):
    parser.add_argument("--filter", required=True,
                        help="a scored filter column (e.g. proxy_wer), or 'none' for the no-filter set")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--threshold", type=float, default=None,
                     help="keep score <= X (higher-is-worse filters) or >= X; default: the filter's own")
    how.add_argument("--keep-fraction", type=float, default=None, help="keep the best P (0-1) of the cuts")
    parser.add_argument("--keep-null", action="store_true", help="keep cuts the filter could not score")
    parser.add_argument("--in", dest="in_path", required=True, help="scored CutSet (stage 4)")
    parser.add_argument("--out", required=True, help="output CutSet, e.g. data/select/proxy_wer/cuts.jsonl.gz")


def run(args):
    from udistil.select.selection import select_cuts

    stats = select_cuts(args.in_path, args.out, args.filter, args.threshold, args.keep_fraction, args.keep_null)
    if stats.get("skipped_existing"):
        print(f"{args.out} exists, skipping (made from the same scores with the same rule)")
        return 0
    print(f"{args.filter}: kept {stats['kept']} / {stats['total']} cuts, "
          f"{stats['hours_kept']:.2f} / {stats['hours_total']:.2f} h ({stats['rule']})")
