"""Stage 1 (ALFFA): ALFFA_PUBLIC ASR/SWAHILI/data/{train,test} Kaldi dirs (placeholder wav paths fixed) -> manifests."""
from udistil.recipes.alffa import SPLITS, prepare_alffa_split


def add_arguments(parser):
    parser.add_argument("--corpus-dir", required=True, help="ALFFA_PUBLIC/ASR/SWAHILI/data (holding train/ and test/)")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--set", dest="set_name", required=True, help="set name: writes PREFIX_recordings_SET.jsonl.gz")
    parser.add_argument("--prefix", required=True, help="manifest name prefix (run.sh's --manifest-prefix)")
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--work-dir", default="data/local/alffa", help="where the fixed-up Kaldi dirs go")


def run(args):
    prepare_alffa_split(args.corpus_dir, args.split, args.out_dir, args.prefix, args.set_name, work_dir=args.work_dir)
