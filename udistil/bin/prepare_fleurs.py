"""Stage 1 (FLEURS): one config (ar_eg, sw_ke, ...) and split of a FLEURS download -> manifests of one set."""
from udistil.recipes.fleurs import SPLITS, prepare_fleurs_split


def add_arguments(parser):
    parser.add_argument("--corpus-dir", required=True,
                        help="FLEURS root: lhotse's download layout or the google/fleurs repository layout")
    parser.add_argument("--config", required=True, help="FLEURS language config, e.g. ar_eg or sw_ke")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--language", required=True, help="Whisper code written to the supervisions (ar, sw)")
    parser.add_argument("--set", dest="set_name", required=True, help="set name: writes PREFIX_recordings_SET.jsonl.gz")
    parser.add_argument("--prefix", required=True, help="manifest name prefix (run.sh's --manifest-prefix)")
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--num-jobs", type=int, default=1, help="threads reading the wav headers")
    parser.add_argument("--work-dir", default="data/local", help="not used (accepted so that older scripts run)")


def run(args):
    prepare_fleurs_split(args.corpus_dir, args.config, args.split, args.out_dir, args.prefix, args.set_name, args.language,
                         num_jobs=args.num_jobs, work_dir=args.work_dir)
