"""Stage 1 (ALFFA): ALFFA_PUBLIC ASR/SWAHILI/data/{train,test} as published -> manifests (optionally a by-speaker dev set)."""
from udistil.recipes.alffa import DEV_FRACTION, SPLITS, prepare_alffa_split


def add_arguments(parser):
    parser.add_argument("--corpus-dir", required=True, help="ALFFA_PUBLIC/ASR/SWAHILI/data (holding train/ and test/)")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--set", dest="set_name", required=True, help="set name: writes PREFIX_recordings_SET.jsonl.gz")
    parser.add_argument("--prefix", required=True, help="manifest name prefix (run.sh's --manifest-prefix)")
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--work-dir", default="data/local/alffa", help="where the fixed-up Kaldi dirs go")
    parser.add_argument("--skip-bad-audio", action="store_true",
                        help="skip (one log line each, counted) recordings whose audio is missing or unreadable "
                             "instead of stopping")
    parser.add_argument("--dev-set", default=None,
                        help="train only: also write this set from whole train speakers (deterministic; the rest "
                             "stays in --set)")
    parser.add_argument("--dev-fraction", type=float, default=DEV_FRACTION,
                        help="share of train's utterances the --dev-set speakers hold, at least")


def run(args):
    prepare_alffa_split(args.corpus_dir, args.split, args.out_dir, args.prefix, args.set_name, work_dir=args.work_dir,
                        skip_bad_audio=args.skip_bad_audio, dev_set=args.dev_set, dev_fraction=args.dev_fraction)
