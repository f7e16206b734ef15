"""Stage 1 (AMMI): clones' data/records/<split>/*.wav + data/raw_text_file.txt -> manifests of one set."""
from udistil.recipes.ammi import LANGUAGES, SPLITS, SUBSET_SEED, SUBSET_SIZES, prepare_ammi_split


def add_arguments(parser):
    parser.add_argument("--corpus-dir", dest="corpus_dirs", required=True, action="append",
                        help="a clone of an AMMI repository (repeat for the two Arabic ones)")
    parser.add_argument("--language", required=True, choices=LANGUAGES)
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--set", dest="set_name", required=True, help="set name: writes PREFIX_recordings_SET.jsonl.gz")
    parser.add_argument("--prefix", required=True, help="manifest name prefix (run.sh's --manifest-prefix)")
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--subset-size", type=int, default=None,
                        help=f"clips in the fixed subset (default per split and language: {SUBSET_SIZES}; 0 = all)")
    parser.add_argument("--seed", type=int, default=SUBSET_SEED, help="seed of the subset")


def run(args):
    prepare_ammi_split(args.corpus_dirs, args.language, args.split, args.out_dir, args.prefix, args.set_name,
                       subset_size=args.subset_size, seed=args.seed)
