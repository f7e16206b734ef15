"""Stage 1 (MGB2): the MGB-2 release (train XML + wav, dev/test Kaldi files) -> manifests of one set."""
from udistil.recipes.mgb2 import PARTS, prepare_mgb2_part


def add_arguments(parser):
    parser.add_argument("--corpus-dir", required=True, help="the unpacked MGB-2 release (train/, dev/, test/)")
    parser.add_argument("--part", required=True, choices=PARTS, help="which part of the release")
    parser.add_argument("--set", dest="set_name", required=True, help="set name: writes PREFIX_recordings_SET.jsonl.gz")
    parser.add_argument("--prefix", required=True, help="manifest name prefix (run.sh's --manifest-prefix)")
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--mer-thresh", default="80",
                        help="train only: keep segments whose alignment WMER is at most this ('none': keep all)")
    parser.add_argument("--no-text-cleaning", action="store_true",
                        help="train only: keep the captions as they are (default: lhotse's MGB2 cleaning)")
    parser.add_argument("--work-dir", default="data/local/mgb2", help="scratch directory for dev/test")
    parser.add_argument("--skip-bad-audio", action="store_true",
                        help="skip (one log line each, counted) recordings whose wav is missing or unreadable")


def run(args):
    mer = None if args.mer_thresh.lower() == "none" else float(args.mer_thresh)
    prepare_mgb2_part(args.corpus_dir, args.part, args.out_dir, args.prefix, args.set_name, mer_thresh=mer,
                      text_cleaning=not args.no_text_cleaning, work_dir=args.work_dir,
                      skip_bad_audio=args.skip_bad_audio)
