"""Print a WER/CER table (markdown) over decode folders: udistil summarize-decodes exp/*/decode_*."""
from udistil.evaluate.summary import summary_table


def add_arguments(parser):
    parser.add_argument("decode_dirs", nargs="+", help="folders written by `udistil decode`")


def run(args):
    print(summary_table(args.decode_dirs))
