"""Stage 1 (Kaldi): a Kaldi data dir (wav.scp, text, segments, utt2spk, reco2dur) -> lhotse manifests.

Security note: a wav.scp entry ending in '|' ("rec1 sox a.flac -t wav - |") is a shell
pipeline, as in Kaldi, and is run by /bin/sh with your permissions, at import (to probe
it) and whenever the audio is read.  Import only data directories you trust, or convert
them to plain file entries first.
"""
from udistil.data.kaldi_dir import import_kaldi_dir


def add_arguments(parser):
    parser.add_argument("--data-dir", required=True, help="Kaldi data dir holding at least wav.scp; 'command |' entries in wav.scp are run "
                        "by the shell (Kaldi's pipes): import only directories you trust")
    parser.add_argument("--language", required=True, help="Whisper language code of every utterance (ar, sw, en, ...)")
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--prefix", required=True, help="manifest name prefix, e.g. the corpus name")
    parser.add_argument("--split", default=None,
                        help="optional split name: PREFIX_recordings_SPLIT.jsonl.gz instead of PREFIX_recordings.jsonl.gz")
    parser.add_argument("--sampling-rate", type=int, default=None,
                        help="expected rate; with reco2dur, piped recordings are not run to probe them")
    parser.add_argument("--skip-bad-audio", action="store_true",
                        help="skip (and count) recordings whose audio is missing or unreadable instead of stopping")


def run(args):
    import_kaldi_dir(args.data_dir, args.language, args.out_dir, args.prefix, split=args.split,
                     sampling_rate=args.sampling_rate, skip_bad_audio=args.skip_bad_audio)
