"""An ALFFA-shaped Swahili checkout (espeak-ng speech) for running egs/swahili end to end.

    python benchmarks/alffa_shaped.py OUT_DIR [--train 2000] [--test 60] [--speakers 40] [--bad 3]

Writes OUT_DIR/ALFFA_PUBLIC/ASR/SWAHILI/data in the release's layout and with its quirks
(tests/recipe_fixtures.make_alffa: authors' wav.scp paths with a trailing space, test audio in
wav5/, "._*" files, <UNK>/<music> tags, lines that are only a tag), plus `--bad` train wavs
listed but missing and `--bad` train wavs that are not audio.  Sentences are drawn with a
fixed seed from a Swahili word list, 2-5 words (about 1-2 s) so that a CPU labels thousands.
Prints the data directory; egs/swahili then runs ALFFA-only:

    cd WORK && egs/swahili/run.sh --alffa-dir OUT_DIR/ALFFA_PUBLIC/ASR/SWAHILI/data --test-sets test_alffa ...
"""
from __future__ import annotations

import argparse
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

WORDS = ("habari asubuhi jioni leo kesho jana rais serikali nchi watu mji kazi maji chakula watoto shule "
         "mwalimu daktari hospitali barabara gari soko bei pesa mvua jua upepo bahari mto mlima nyumba "
         "kubwa ndogo nzuri mbaya sana kidogo wengi wote moja mbili tatu nne tano habari za kiswahili "
         "redio matangazo uchaguzi kura bunge waziri mkuu taifa amani usalama michezo mpira timu").split()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--test", type=int, default=60)
    p.add_argument("--speakers", type=int, default=40)
    p.add_argument("--bad", type=int, default=3, help="missing and (as many) corrupt train wavs")
    p.add_argument("--seed", type=int, default=29)
    args = p.parse_args(argv)

    from recipe_fixtures import make_alffa
    from udistil.tts.espeak import synthesize

    rng = random.Random(args.seed)

    def rows(split, n, date):
        out = []
        for i in range(n):
            spk = f"SWH-{(i % args.speakers):02d}-{date}"
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
            written = words
            r = rng.random()
            if r < 0.02:
                written = "<music>"
            elif r < 0.06:
                written = f"{words} <UNK>"
            elif r < 0.08:
                written = f"<music> {words}"
            out.append((f"16k-emission_swahili_{date}_part{i:05d}", spk, words, written))
        return out

    splits = {"train": rows("train", args.train, "20101106"), "test": rows("test", args.test, "20101124")}
    bad = rng.sample([u for u, *_ in splits["train"]], 2 * args.bad)
    missing, corrupt = set(bad[:args.bad]), set(bad[args.bad:])
    # Synthesis dominates; espeak-ng runs as a subprocess, so threads overlap it.
    cache = {}
    texts = {spoken for rows_ in splits.values() for _, _, spoken, _ in rows_}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for text, audio in zip(texts, pool.map(lambda t: synthesize(t, voice="sw"), texts)):
            cache[text] = audio
    root = Path(args.out_dir) / "ALFFA_PUBLIC" / "ASR" / "SWAHILI" / "data"
    make_alffa(root, splits, lambda text, voice="sw": cache[text], missing=missing, corrupt=corrupt)
    print(root)
    print(f"missing: {' '.join(sorted(missing))}", file=sys.stderr)
    print(f"corrupt: {' '.join(sorted(corrupt))}", file=sys.stderr)


if __name__ == "__main__":
    main()
