"""Stage 2: recordings + supervisions -> <= 30 s, 16 kHz mono, validated CutSet (bad audio skipped, counted)."""
from udistil.data.prepare_cuts import CHECK_AUDIO_MODES, MAX_DURATION, prepare_cuts


def add_arguments(parser):
    parser.add_argument("--recordings", required=True, help="lhotse RecordingSet (jsonl.gz) from stage 1")
    parser.add_argument("--supervisions", required=True, help="lhotse SupervisionSet (jsonl.gz) from stage 1")
    parser.add_argument("--out", required=True, help="output CutSet, e.g. data/cuts_train.jsonl.gz")
    parser.add_argument("--max-duration", type=float, default=MAX_DURATION,
                        help="longest cut in seconds (Whisper sees 30 s)")
    parser.add_argument("--split-long", action="store_true",
                        help="split over-long supervisions that have no text into equal pieces instead of dropping them")
    parser.add_argument("--check-audio", choices=CHECK_AUDIO_MODES, default="decode",
                        help="decode: read every cut once (catches silence, broken pipes); header: file headers only")
    parser.add_argument("--mono-dir", default=None,
                        help="where down-mixed copies of multi-channel recordings go (default: OUT's dir/wav_mono16k)")


def run(args):
    prepare_cuts(args.recordings, args.supervisions, args.out, max_duration=args.max_duration,
                 split_long=args.split_long, check_audio=args.check_audio, mono_dir=args.mono_dir)
