"""Merge shard CutSets (in the order given) into one manifest."""
from udistil.parallel.shards import merge_cuts


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="merged CutSet")
    parser.add_argument("inputs", nargs="+", help="shard CutSets, in order")


def run(args):
    merge_cuts(args.inputs, args.out)
