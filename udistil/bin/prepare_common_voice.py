"""Stage 1 (Common Voice): <cv_dir>/<lang>/{clips/*.mp3, SPLIT.tsv} -> manifests of one set."""
from udistil.recipes.common_voice import prepare_common_voice_split


def add_arguments(parser):
    parser.add_argument("--corpus-dir", required=True, help="the release directory holding <lang>/clips and <lang>/*.tsv")
    parser.add_argument("--language", required=True, help="Common Voice locale and Whisper code (ar, sw)")
    parser.add_argument("--split", required=True, help="tsv name: train, dev, test, validated, other, ...")
    parser.add_argument("--set", dest="set_name", required=True, help="set name: writes PREFIX_recordings_SET.jsonl.gz")
    parser.add_argument("--prefix", required=True, help="manifest name prefix (run.sh's --manifest-prefix)")
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--num-jobs", type=int, default=1, help="threads reading the clips' headers")
    parser.add_argument("--work-dir", default="data/local/common_voice", help="not used (accepted so that older scripts run)")


def run(args):
    prepare_common_voice_split(args.corpus_dir, args.language, args.split, args.out_dir, args.prefix, args.set_name,
                               num_jobs=args.num_jobs, work_dir=args.work_dir)
