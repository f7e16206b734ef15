"""The embedded offline "mini" corpus: labelled Arabic, Swahili and English speech from espeak-ng.

Every default `./run.sh` trains on this, so it must be built offline, fast and reproducibly,
and it must make the paper's point visible: the teacher's pseudo-labels should range from
perfect (clean English) to garbage (Arabic under 0 dB babble), so the label-free filters
have something to separate.

What varies per utterance, drawn from seeded generators (one per split, so a split's draws
do not depend on the other splits' sizes):
- the sentence (local/sentences/{ar,sw,en}.txt, written for this recipe, and
  local/sentences/train_only/<lang>.txt, sentences for the training pool only),
- the espeak voice variant (+m1, +f2, +klatt, ...), the speaking rate and the pitch,
- additive noise: none, white, or babble (a sum of other utterances of the same split)
  at a chosen SNR.

Splits and what keeps them honest:
- each language's sentences are shuffled and partitioned into train / dev / test pools, so
  test_clean and test_noisy share no sentence with train or dev;
- test voices (TEST_VOICES) are never used in train or dev, so a student cannot pass by
  memorising a voice; dev shares train's voices;
- train and dev clips say one to three sentences (TRAIN_SENTENCES_PER_CLIP), as real
  corpora's segments do: a student that only ever heard one sentence per clip learns to end
  after the first one.  test_clean and test_noisy keep one sentence a clip, so their figures
  stay comparable across the project's history;
- an optional English ruler, test_heldout (`num_heldout`), is built from what no other split
  uses: voices of HELDOUT_VOICES, wider speaking rates and pitches, and one to three sentences
  a clip.  It measures generalisation beyond the corpus's own voices and clip shapes, so it is
  never used to choose a setting; dev_heldout (the same `num_heldout`) is its dev twin, with
  dev sentences and voices of its own (DEV_HELDOUT_VOICES), on which such settings are chosen;
- every split holds all three languages.  Dev and test are ~45% English: whisper-base only
  does well on English synthetic speech, so that is where the filters have good and bad
  labels to separate.  Train is ~80% English, each English clip with its own sentence where
  the pool allows: a student learns from distinct English sentences (docs/experiments.md:
  its dev WER falls with every increase from 28 to 192 of them), and the Arabic and Swahili
  pseudo-labels, which whisper-base gets wrong, are still there for the filters to reject.

Output: 16 kHz 16-bit wavs in <wav_dir>/<split>/<cut id>.wav and, per split,
<out_dir>/mini_recordings_<split>.jsonl.gz and mini_supervisions_<split>.jsonl.gz.  The
same seed gives byte-identical manifests (and wavs).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import Recording, SupervisionSegment
from lhotse.audio import AudioSource

from udistil.data.source_manifests import manifest_path, write_manifest_deterministic
from udistil.errors import UdistilError
from udistil.tts.espeak import synthesize
from udistil.models.audio_context import SAMPLE_RATE

log = logging.getLogger(__name__)

CORPUS_PREFIX = "mini"
DEFAULT_SENTENCES_DIR = Path(__file__).resolve().parents[2] / "local" / "sentences"

# Share of each split per language (see module docstring).  The order of the languages is the
# order their sentences are partitioned in, so it must not change (nor the dev and test shares):
# that would change every dev and test clip.
LANGUAGE_SHARE = {"en": 0.45, "ar": 0.30, "sw": 0.25}
TRAIN_LANGUAGE_SHARE = {"en": 0.80, "ar": 0.10, "sw": 0.10}
# Sentences added after the partition was fixed join the training pool only: appended to
# <lang>.txt, they would reshuffle the partition and so every dev and test clip.
TRAIN_ONLY_SENTENCES_SUBDIR = "train_only"
# espeak-ng voice variant files (`espeak-ng --voices=variant`); the two lists are disjoint.
TRAIN_VOICES = ("m1", "m3", "m5", "f1", "f3", "f5", "klatt", "klatt4", "croak")
TEST_VOICES = ("m2", "m7", "f2", "f4", "klatt2", "klatt3")
HELDOUT_VOICES = ("m4", "m6", "m8", "klatt5", "Annie", "david", "linda", "steph")
# dev_heldout's voices: held out like test_heldout's, but other ones, so that generalisation
# settings are chosen on voices that the ruler reporting them never uses.
DEV_HELDOUT_VOICES = ("klatt6", "Andy", "edward", "paul", "rob", "Alicia", "aunty", "max")
SPEEDS_WPM = (130, 150, 165, 180, 200)
PITCHES = (30, 40, 50, 60, 75)
HELDOUT_SPEEDS_WPM = (115, 140, 170, 210, 230)
HELDOUT_PITCHES = (20, 35, 55, 70, 85)
# Probabilities of 1, 2 and 3 sentences in a clip.
ONE_SENTENCE = (1.0,)
TRAIN_SENTENCES_PER_CLIP = (0.5, 0.3, 0.2)
HELDOUT_SENTENCES_PER_CLIP = (0.4, 0.35, 0.25)
# Default split sizes (cuts): train holds ~0.3 h, with a new English sentence in every slot.
DEFAULT_NUM_TRAIN, DEFAULT_NUM_DEV, DEFAULT_NUM_TEST = 160, 40, 40
# Fractions of each language's sentences held out for test and dev.
TEST_SENTENCE_FRACTION = 0.25
DEV_SENTENCE_FRACTION = 0.15
# A sentence longer than this is re-spoken faster; a clip of several sentences may reach
# MAX_CLIP_SECONDS (Whisper's window is 30 s).
MAX_SENTENCE_SECONDS = 12.0
MAX_CLIP_SECONDS = 25.0
LEADING_SILENCE = 0.5
TRAILING_SILENCE = 0.3
BABBLE_TALKERS = 3

CLEAN = ("none", None)
# (noise kind, SNR dB); clean appears several times so about a third of train is clean.
TRAIN_CONDITIONS = (CLEAN, CLEAN, CLEAN, CLEAN,
                    ("white", 20.0), ("white", 10.0), ("white", 5.0), ("white", 0.0),
                    ("babble", 20.0), ("babble", 10.0), ("babble", 5.0), ("babble", 0.0))
TEST_NOISY_CONDITIONS = (("white", 10.0), ("white", 5.0), ("white", 0.0),
                         ("babble", 10.0), ("babble", 5.0), ("babble", 0.0))


@dataclass(frozen=True)
class SplitPlan:
    name: str
    num_cuts: int
    sentence_pool: str  # "train", "dev" or "test": which partition of the sentences
    voices: tuple[str, ...]
    conditions: tuple[tuple[str, float | None], ...]
    language_share: dict[str, float] = field(default_factory=lambda: dict(LANGUAGE_SHARE))
    sentences_per_clip: tuple[float, ...] = ONE_SENTENCE
    speeds: tuple[int, ...] = SPEEDS_WPM
    pitches: tuple[int, ...] = PITCHES


@dataclass
class Utterance:
    cut_id: str
    split: str
    language: str
    text: str
    variant: str
    speed: int
    pitch: int
    noise: str
    snr_db: float | None
    babble_ids: list[str] = field(default_factory=list)
    sentences: int = 1

    @property
    def voice(self) -> str:
        return f"{self.language}+{self.variant}"


def split_plans(num_train: int, num_dev: int, num_test: int, num_heldout: int = 0) -> list[SplitPlan]:
    """The four splits (test_clean and test_noisy each get `num_test` cuts), and the
    held-out-voice English rulers (test and dev) when `num_heldout` > 0."""
    plans = [
        SplitPlan("train", num_train, "train", TRAIN_VOICES, TRAIN_CONDITIONS, dict(TRAIN_LANGUAGE_SHARE),
                  sentences_per_clip=TRAIN_SENTENCES_PER_CLIP),
        SplitPlan("dev", num_dev, "dev", TRAIN_VOICES, TRAIN_CONDITIONS,
                  sentences_per_clip=TRAIN_SENTENCES_PER_CLIP),
        SplitPlan("test_clean", num_test, "test", TEST_VOICES, (CLEAN,)),
        SplitPlan("test_noisy", num_test, "test", TEST_VOICES, TEST_NOISY_CONDITIONS),
    ]
    if num_heldout > 0:
        for name, pool, voices in (("test_heldout", "test", HELDOUT_VOICES),
                                   ("dev_heldout", "dev", DEV_HELDOUT_VOICES)):
            plans.append(SplitPlan(name, num_heldout, pool, voices, (CLEAN,), {"en": 1.0},
                                   sentences_per_clip=HELDOUT_SENTENCES_PER_CLIP,
                                   speeds=HELDOUT_SPEEDS_WPM, pitches=HELDOUT_PITCHES))
    return plans


def read_sentence_list(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln]


def load_sentences(sentences_dir=DEFAULT_SENTENCES_DIR) -> dict[str, list[str]]:
    """{language: [sentence, ...]} from <dir>/<lang>.txt, one sentence a line."""
    sentences = {}
    for lang in LANGUAGE_SHARE:
        path = Path(sentences_dir) / f"{lang}.txt"
        if not path.exists():
            raise UdistilError(f"{path}: sentence list not found (expected one sentence per line)")
        sentences[lang] = read_sentence_list(path)
        if len(sentences[lang]) < 10:
            raise UdistilError(f"{path}: only {len(sentences[lang])} sentences; need at least 10 "
                               "to keep train, dev and test sentences disjoint")
    return sentences


def load_train_only_sentences(sentences_dir, partitioned: dict[str, list[str]]) -> dict[str, list[str]]:
    """{language: [sentence, ...]} from <dir>/train_only/<lang>.txt where present.

    A sentence that is also in the partitioned lists could land in dev or test as well as in
    train, so it is refused, with the file and the sentence named.
    """
    extra = {}
    for lang in LANGUAGE_SHARE:
        path = Path(sentences_dir) / TRAIN_ONLY_SENTENCES_SUBDIR / f"{lang}.txt"
        if not path.exists():
            continue
        extra[lang] = read_sentence_list(path)
        known = set(partitioned[lang])
        for n, sentence in enumerate(extra[lang], 1):
            if sentence in known:
                raise UdistilError(f"{path}: sentence {n} ({sentence!r}) is also in {lang}.txt, "
                                   "whose sentences may be dev or test sentences")
            known.add(sentence)
    return extra


def partition_sentences(sentences: dict[str, list[str]], rng: np.random.Generator,
                        train_only: dict[str, list[str]] | None = None) -> dict[str, dict[str, list[str]]]:
    """{pool: {language: sentences}} with train, dev and test pools disjoint per language.

    `train_only` sentences are appended to the training pool after the partition, so they
    never change which sentences are dev and test.
    """
    pools = {"train": {}, "dev": {}, "test": {}}
    for lang, items in sentences.items():
        order = [items[i] for i in rng.permutation(len(items))]
        n_test = max(1, round(TEST_SENTENCE_FRACTION * len(order)))
        n_dev = max(1, round(DEV_SENTENCE_FRACTION * len(order)))
        pools["test"][lang] = order[:n_test]
        pools["dev"][lang] = order[n_test:n_test + n_dev]
        pools["train"][lang] = order[n_test + n_dev:] + list((train_only or {}).get(lang, []))
    return pools


def language_counts(num_cuts: int, share: dict[str, float] = LANGUAGE_SHARE) -> dict[str, int]:
    """Split num_cuts by `share` (largest remainder), at least one each when possible."""
    langs = list(share)
    if num_cuts < len(langs):
        return {lang: int(i < num_cuts) for i, lang in enumerate(langs)}
    counts = {lang: max(1, int(num_cuts * share[lang])) for lang in langs}
    remainders = sorted(langs, key=lambda l: num_cuts * share[l] - int(num_cuts * share[l]),
                        reverse=True)
    i = 0
    while sum(counts.values()) < num_cuts:
        counts[remainders[i % len(langs)]] += 1
        i += 1
    while sum(counts.values()) > num_cuts:  # only when the max(1, ...) floor overshot
        biggest = max(langs, key=lambda l: counts[l])
        counts[biggest] -= 1
    return counts


def plan_split(plan: SplitPlan, pools, rng: np.random.Generator) -> list[Utterance]:
    """Draw sentence, voice, speed, pitch and noise for every cut of one split."""
    utterances = []
    for lang, count in language_counts(plan.num_cuts, plan.language_share).items():
        if count == 0:
            continue
        pool = pools[plan.sentence_pool][lang]
        # A one-sentence split draws nothing here, so its clips are those it always had.
        if len(plan.sentences_per_clip) > 1:
            sizes = 1 + rng.choice(len(plan.sentences_per_clip), size=count, p=plan.sentences_per_clip)
        else:
            sizes = np.ones(count, dtype=int)
        # Walk through reshuffled copies of the pool so sentences are reused evenly.
        order = []
        while len(order) < int(sizes.sum()):
            order.extend(pool[i] for i in rng.permutation(len(pool)))
        starts = np.concatenate([[0], np.cumsum(sizes)])
        for k in range(count):
            noise, snr = plan.conditions[rng.integers(len(plan.conditions))]
            text = " ".join(order[starts[k]:starts[k + 1]])
            utterances.append(Utterance(
                cut_id=f"{CORPUS_PREFIX}-{plan.name}-{lang}-{k:04d}", split=plan.name, language=lang,
                text=text, variant=plan.voices[rng.integers(len(plan.voices))],
                speed=int(plan.speeds[rng.integers(len(plan.speeds))]),
                pitch=int(plan.pitches[rng.integers(len(plan.pitches))]), noise=noise, snr_db=snr,
                sentences=int(sizes[k])))
    for utt in utterances:
        if utt.noise == "babble":
            others = [u.cut_id for u in utterances if u.cut_id != utt.cut_id]
            if not others:  # a one-cut split has nobody to babble; fall back to white noise
                utt.noise = "white"
                continue
            picks = rng.choice(len(others), size=min(BABBLE_TALKERS, len(others)), replace=False)
            utt.babble_ids = [others[i] for i in sorted(picks)]
    return utterances


def plan_corpus(plans: list[SplitPlan], seed: int, sentences_dir=DEFAULT_SENTENCES_DIR) -> dict[str, list[Utterance]]:
    """Every split's utterances, drawn without synthesising anything.

    The sentence partition comes from `seed`; each split then draws from its own generator,
    seeded by `seed` and the split's name, so one split's size never changes another's
    draws: `--num-train 480` keeps the test and dev clips of `--num-train 160`, and
    comparisons across train sizes are on the same test set.
    """
    sentences = load_sentences(sentences_dir)
    pools = partition_sentences(sentences, np.random.default_rng(seed),
                                load_train_only_sentences(sentences_dir, sentences))
    return {plan.name: plan_split(plan, pools, np.random.default_rng([seed, *plan.name.encode()]))
            for plan in plans}


def speak(utt: Utterance) -> np.ndarray:
    """Clean espeak audio for one utterance, re-spoken faster if it would exceed the clip limit."""
    samples = synthesize(utt.text, voice=utt.voice, speed=utt.speed, pitch=utt.pitch)
    limit = min(MAX_SENTENCE_SECONDS * utt.sentences, MAX_CLIP_SECONDS) * SAMPLE_RATE
    if len(samples) > limit:
        # Faster speech keeps the whole sentence (and so the label) instead of truncating it.
        utt.speed = int(np.ceil(utt.speed * len(samples) / (0.95 * limit)))
        samples = synthesize(utt.text, voice=utt.voice, speed=utt.speed, pitch=utt.pitch)
    if samples.size == 0:
        raise UdistilError(f"espeak-ng produced no audio for {utt.cut_id} (voice {utt.voice})")
    # espeak-ng speaks from the very first sample; real recordings (and Whisper's training
    # data) have a little silence around speech, without which Whisper mishears the first
    # words.  The SNR is measured over the whole clip, padding included.
    lead, tail = int(LEADING_SILENCE * SAMPLE_RATE), int(TRAILING_SILENCE * SAMPLE_RATE)
    return np.concatenate([np.zeros(lead, samples.dtype), samples, np.zeros(tail, samples.dtype)])


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + noise scaled so that 10*log10(P_clean / P_noise) == snr_db over the whole clip."""
    noise = noise[: len(clean)]
    gain = np.sqrt(power(clean) / (power(noise) * 10.0 ** (snr_db / 10.0)))
    return clean + gain * noise


def babble_noise(talkers: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of other utterances, each at equal power, looped and offset to `length` samples."""
    babble = np.zeros(length, dtype=np.float64)
    for talker in talkers:
        looped = np.resize(talker, length + len(talker))  # np.resize repeats the signal
        start = int(rng.integers(len(talker)))
        babble += looped[start:start + length] / np.sqrt(power(talker) + 1e-12)
    return babble


def render(utt: Utterance, clean: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """The final waveform of one cut: clean speech plus its noise, kept inside [-1, 1]."""
    speech = clean[utt.cut_id].astype(np.float64)
    # Per-cut generator: the noise does not depend on thread scheduling or on other cuts.
    rng = np.random.default_rng([seed, *utt.cut_id.encode()])
    if utt.noise == "white":
        speech = mix_at_snr(speech, rng.standard_normal(len(speech)), utt.snr_db)
    elif utt.noise == "babble":
        noise = babble_noise([clean[i] for i in utt.babble_ids], len(speech), rng)
        speech = mix_at_snr(speech, noise, utt.snr_db)
    peak = float(np.max(np.abs(speech)))
    if peak > 0.99:  # scaling speech and noise together keeps the SNR
        speech *= 0.99 / peak
    return speech.astype(np.float32)


def to_manifests(utt: Utterance, wav_path: Path, num_samples: int):
    duration = num_samples / SAMPLE_RATE
    recording = Recording(
        id=utt.cut_id, sampling_rate=SAMPLE_RATE, num_samples=num_samples, duration=duration,
        sources=[AudioSource(type="file", channels=[0], source=str(wav_path))])
    supervision = SupervisionSegment(
        id=utt.cut_id, recording_id=utt.cut_id, start=0.0, duration=duration, channel=0,
        text=utt.text, language=utt.language, speaker=utt.variant,
        custom={"voice": utt.voice, "speed": utt.speed, "pitch": utt.pitch,
                "noise": utt.noise, "snr_db": utt.snr_db, "sentences": utt.sentences})
    return recording, supervision


def corpus_plan_fingerprint(num_train: int = DEFAULT_NUM_TRAIN, num_dev: int = DEFAULT_NUM_DEV,
                            num_test: int = DEFAULT_NUM_TEST, seed: int = 0,
                            sentences_dir=DEFAULT_SENTENCES_DIR, num_heldout: int = 0) -> str:
    """A short hash of everything drawn for the corpus (every cut's sentence, voice, rate,
    pitch and noise) and of the rendering settings.

    Stage 1's marker records it, so a run directory whose corpus came from other sentence
    lists, language shares or draws is found stale instead of silently kept.  Nothing is
    synthesised: planning is cheap.
    """
    plans = split_plans(num_train, num_dev, num_test, num_heldout)
    utterances = plan_corpus(plans, seed, sentences_dir)
    drawn = {
        "utterances": {name: [asdict(u) for u in utts] for name, utts in utterances.items()},
        "rendering": [SAMPLE_RATE, MAX_SENTENCE_SECONDS, MAX_CLIP_SECONDS, LEADING_SILENCE,
                      TRAILING_SILENCE, BABBLE_TALKERS],
    }
    return hashlib.sha256(json.dumps(drawn, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def prepare_mini_corpus(out_dir, wav_dir=None, num_train: int = DEFAULT_NUM_TRAIN,
                        num_dev: int = DEFAULT_NUM_DEV, num_test: int = DEFAULT_NUM_TEST, seed: int = 0, sentences_dir=DEFAULT_SENTENCES_DIR,
                        num_threads: int = 4, num_heldout: int = 0) -> dict[str, dict[str, Path]]:
    """Synthesise the corpus; return {split: {"recordings": path, "supervisions": path}}."""
    out_dir = Path(out_dir)
    wav_dir = Path(wav_dir) if wav_dir is not None else out_dir.parent / "wav"
    wav_dir = wav_dir.resolve()  # recordings point at absolute paths, valid from any cwd
    if min(num_train, num_dev, num_test) < 1:
        raise UdistilError("--num-train, --num-dev and --num-test must each be at least 1")
    start = time.time()
    plans = split_plans(num_train, num_dev, num_test, num_heldout)
    utterances = plan_corpus(plans, seed, sentences_dir)
    everything = [u for plan in plans for u in utterances[plan.name]]

    # espeak-ng runs as a subprocess, so threads overlap it well despite the GIL.
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        clean = dict(zip((u.cut_id for u in everything), pool.map(speak, everything)))

    outputs = {}
    for plan in plans:
        recordings, supervisions = [], []
        (wav_dir / plan.name).mkdir(parents=True, exist_ok=True)
        for utt in utterances[plan.name]:
            samples = render(utt, clean, seed)
            wav_path = wav_dir / plan.name / f"{utt.cut_id}.wav"
            sf.write(str(wav_path), samples, SAMPLE_RATE, subtype="PCM_16")
            rec, sup = to_manifests(utt, wav_path, len(samples))
            recordings.append(rec)
            supervisions.append(sup)
        paths = {
            "recordings": manifest_path(out_dir, CORPUS_PREFIX, "recordings", plan.name),
            "supervisions": manifest_path(out_dir, CORPUS_PREFIX, "supervisions", plan.name),
        }
        write_manifest_deterministic(recordings, paths["recordings"])
        write_manifest_deterministic(supervisions, paths["supervisions"])
        outputs[plan.name] = paths
        langs = {lang: sum(u.language == lang for u in utterances[plan.name]) for lang in LANGUAGE_SHARE}
        hours = sum(r.duration for r in recordings) / 3600
        log.info("%s: %d cuts (%s), %.2f h -> %s", plan.name, len(recordings),
                 ", ".join(f"{k} {v}" for k, v in langs.items()), hours, paths["recordings"].parent)
    log.info("mini corpus: %d cuts synthesised in %.1f s (seed %d)", len(everything), time.time() - start, seed)
    return outputs
