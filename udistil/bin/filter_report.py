"""Stage 8 (filters): AUROC, Spearman, kept-set WER and cost of every scored filter; table + plots."""


def add_arguments(parser):
    parser.add_argument("--in", dest="in_path", required=True, help="scored CutSet WITH references (e.g. dev)")
    parser.add_argument("--out", required=True, help="output directory, e.g. exp/report")
    parser.add_argument("--teacher-logs", default="exp/teacher/*/log/pseudo_label.*.log",
                        help="glob of stage-3 logs, for decoding time per audio second")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    parser.add_argument("--skip-unlabelled", action="store_true",
                        help="exit 0 with a note (instead of an error) when the set has no references")


def run(args):
    from udistil.report.filter_quality import filter_quality, has_references

    if args.skip_unlabelled and not has_references(args.in_path):
        print(f"{args.in_path}: no references; filter-quality report skipped")
        return 0
    filter_quality(args.in_path, args.out, args.teacher_logs, plots=not args.no_plots)
    print(open(f"{args.out}/filter_quality.md", encoding="utf-8").read())
