"""Stage 1 (mini): synthesise the offline ar/sw/en corpus with espeak-ng into lhotse manifests."""
from udistil.data.mini_corpus import (DEFAULT_NUM_DEV, DEFAULT_NUM_TEST, DEFAULT_NUM_TRAIN, DEFAULT_SENTENCES_DIR,
                                      corpus_plan_fingerprint, prepare_mini_corpus)


def add_arguments(parser):
    parser.add_argument("--out-dir", default="data/manifests", help="where the manifests go")
    parser.add_argument("--wav-dir", default=None, help="where the wavs go (default: OUT_DIR/../wav)")
    parser.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN, help="train cuts")
    parser.add_argument("--num-dev", type=int, default=DEFAULT_NUM_DEV, help="dev cuts")
    parser.add_argument("--num-test", type=int, default=DEFAULT_NUM_TEST, help="cuts in each of test_clean and test_noisy")
    parser.add_argument("--num-heldout", type=int, default=0,
                        help="cuts of test_heldout, the English ruler of voices, rates, pitches and "
                        "clip shapes no other split uses (0: not built)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same corpus (byte-identical manifests)")
    parser.add_argument("--sentences-dir", default=str(DEFAULT_SENTENCES_DIR), help="holds {ar,sw,en}.txt")
    parser.add_argument("--num-threads", type=int, default=4, help="parallel espeak-ng processes")
    parser.add_argument("--print-plan-fingerprint", action="store_true",
                        help="print a hash of what these options would draw (sentences, voices, noise) "
                        "and exit without synthesising; stage 1's marker records it")


def run(args):
    if args.print_plan_fingerprint:
        print(corpus_plan_fingerprint(num_train=args.num_train, num_dev=args.num_dev, num_test=args.num_test,
                                      seed=args.seed, sentences_dir=args.sentences_dir,
                                      num_heldout=args.num_heldout))
        return 0
    prepare_mini_corpus(args.out_dir, wav_dir=args.wav_dir, num_train=args.num_train,
                        num_dev=args.num_dev, num_test=args.num_test, seed=args.seed,
                        sentences_dir=args.sentences_dir, num_threads=args.num_threads,
                        num_heldout=args.num_heldout)
