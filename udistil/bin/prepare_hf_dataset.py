"""Stage 1 (Hugging Face): a dataset saved with save_to_disk (SADA, Casablanca, in-house sets) -> manifests of one set."""
from udistil.recipes.hf_dataset import prepare_hf_dataset


def add_arguments(parser):
    parser.add_argument("--dataset-dir", required=True, help="directory written by Dataset(Dict).save_to_disk")
    parser.add_argument("--language", required=True, help="Whisper code of every utterance (ar, sw, ...)")
    parser.add_argument("--set", dest="set_name", required=True, help="set name: writes PREFIX_recordings_SET.jsonl.gz")
    parser.add_argument("--prefix", required=True, help="manifest name prefix (run.sh's --manifest-prefix)")
    parser.add_argument("--split", default=None, help="split of a DatasetDict (default: its only split)")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--text-column", default=None, help="default: text, sentence, transcription, ... whichever exists")
    parser.add_argument("--id-column", default=None, help="default: audio file names if unique, else SET_<row>")
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--wav-dir", default=None, help="where embedded audio is written (default data/local/hf/SET/audio)")


def run(args):
    prepare_hf_dataset(args.dataset_dir, args.out_dir, args.prefix, args.set_name, args.language, split=args.split,
                       audio_column=args.audio_column, text_column=args.text_column,
                       id_column=args.id_column, wav_dir=args.wav_dir)
