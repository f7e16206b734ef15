"""Stage 8: write RESULTS.md (models x test sets, WER/CER, params, speed) from exp/."""


def add_arguments(parser):
    parser.add_argument("--exp", required=True, help="experiment directory (exp/teacher, exp/student_*)")
    parser.add_argument("--out", default=None, help="output file (default: RESULTS.md beside --exp)")
    parser.add_argument("--refs", action="store_true",
                        help="kept for the DESIGN.md contract: references are detected from the decodes "
                             "(sets without them show '-')")
    parser.add_argument("--command", default=None,
                        help="command line to record (default: $UDISTIL_RUN_COMMAND, else this command)")


def run(args):
    from udistil.report.results import write_results

    print(write_results(args.exp, args.out, args.command))
