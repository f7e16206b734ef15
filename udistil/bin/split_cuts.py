"""Split a CutSet into --nj shards DIR/cuts.{1..N}.jsonl.gz (kept if already split the same way)."""
from udistil.parallel.shards import split_cuts


def add_arguments(parser):
    parser.add_argument("--in", dest="in_path", required=True, help="input CutSet")
    parser.add_argument("--nj", type=int, required=True, help="number of shards")
    parser.add_argument("--out-dir", required=True, help="directory for cuts.JOB.jsonl.gz")


def run(args):
    split_cuts(args.in_path, args.nj, args.out_dir)
