"""Stage 8: write RESULTS.md (models x test sets, WER/CER, params, speed) from exp/."""


def add_arguments(parser):
    parser.add_argument("--exp", required=True, help="experiment directory (exp/teacher, exp/student_*)")
    parser.add_argument("--out", default=None, help="output file (default: RESULTS.md beside --exp)")
    parser.add_argument("--refs", action="store_true",
                        help="kept for the docs/design.md contract: references are detected from the decodes "
                             "(sets without them show '-')")
    parser.add_argument("--command", default=None,
                        help="command line to record (default: $UDISTIL_RUN_COMMAND, else this command)")
    parser.add_argument("--filter-report-dirs", action="store_true",
                        help="only print, one '<role>\\t<directory>' line each (role: dev or pool), where "
                             "the filter-quality reports RESULTS.md includes belong; stage 8 writes them there")
    parser.add_argument("--round-dirs", type=int, default=None, metavar="N",
                        help="only print the directories of self-training rounds 1 to N, one a line "
                             "(round 1 is --exp itself); run.sh writes each round there")


def run(args):
    from udistil.report.results import filter_report_dirs, round_dir, write_results

    if args.filter_report_dirs:
        print(filter_report_dirs(args.exp))
        return 0
    if args.round_dirs is not None:
        print("\n".join(str(round_dir(args.exp, r)) for r in range(1, args.round_dirs + 1)))
        return 0
    print(write_results(args.exp, args.out, args.command))
