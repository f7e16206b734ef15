"""Running a filter over a CutSet: batches, progress bar, resumable output, null logging.

`score_cuts(filter, in_path, out_path)` adds `supervision.custom[filter.name]` to every
cut (a float, or None when the filter cannot score it) and writes all cuts, scored or
not, to `out_path`; no cut is ever dropped by scoring.  Finished cuts are appended to a
partial file as they are scored (ResumableCutWriter), so a killed shard re-run redoes at
most the batch in flight.  Sharding (--nj) is run.sh's split-cuts / merge-cuts around it.

Per cut, the wall time spent scoring it is added to `custom["filter_seconds"][name]`
(a batch's time shared in proportion to duration), so the filter-quality report can put
each filter's cost beside stage-3 decoding after shards are merged.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

from udistil.data.audio import load_cut_audio
from udistil.data.manifests import custom, iter_cuts, write_cuts, write_json_atomic
from udistil.errors import BadAudioError, UdistilError
from udistil.filters import filter_class
from udistil.filters.base import Filter, Score
from udistil.parallel.fingerprint import fingerprint, model_identity
from udistil.parallel.resumable import ResumableCutWriter

logger = logging.getLogger(__name__)

# Examples of each null reason printed at WARNING; the rest are counted (a 500K-cut set
# with an English-only proxy would otherwise log every Arabic cut).
EXAMPLES_PER_REASON = 3


class NullLog:
    """Counts null scores by reason and logs the first few cut ids of each."""

    def __init__(self, filter_name: str):
        self.filter_name = filter_name
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, cut_id: str, reason: str) -> None:
        # Count by the reason's head: decoder errors carry the file name and a traceback text.
        kind = reason.split(" (")[0]
        self.counts[kind] += 1
        if len(self.examples[kind]) < EXAMPLES_PER_REASON:
            self.examples[kind].append(cut_id)
            logger.warning("%s: null for cut %s: %s", self.filter_name, cut_id, reason)
        else:
            logger.debug("%s: null for cut %s: %s", self.filter_name, cut_id, reason)


def _store(cut, name: str, score: Score, seconds: float) -> None:
    fields = custom(cut)
    fields[name] = None if score.value is None else round(float(score.value), 6)
    timing = dict(fields.get("filter_seconds") or {})
    timing[name] = round(seconds, 6)
    fields["filter_seconds"] = timing


def _load_audios(batch, nulls: dict[str, str]):
    audios = []
    for cut in batch:
        try:
            audios.append(load_cut_audio(cut))
        except BadAudioError as e:
            nulls[cut.id] = f"unusable audio: {e.reason}"
            audios.append(None)
    return audios


def _score_one_by_one(filt: Filter, cuts, audios, first_error: Exception) -> list[Score]:
    """After a batch raised: score its cuts alone, so one bad cut costs one null.

    When every cut of a batch of several fails alone too, the fault is not in the data
    (a model that will not run, a bug): that error stops the shard instead of nulling it all.
    """
    scores, failures = [], 0
    for cut, audio in zip(cuts, audios):
        try:
            scores.extend(filt.score([cut], [audio]))
        except Exception as e:  # any failure inside a filter on this one cut's data
            failures += 1
            scores.append(Score.null(f"{filt.name} failed on this cut ({type(e).__name__}: {e})"))
    if failures == len(cuts) and len(cuts) > 1:
        raise first_error
    return scores


def _score_batch(filt: Filter, batch) -> tuple[list[Score], float]:
    t0 = time.perf_counter()
    nulls: dict[str, str] = {}
    audios = _load_audios(batch, nulls) if "audio" in filt.needs else [None] * len(batch)
    usable = [i for i, cut in enumerate(batch) if cut.id not in nulls]
    scores = [Score.null(nulls.get(cut.id, "")) for cut in batch]
    if usable:
        cuts, arrays = [batch[i] for i in usable], [audios[i] for i in usable]
        try:
            got = filt.score(cuts, arrays)
        except Exception as e:  # noqa: BLE001 - narrowed to the failing cut below
            got = _score_one_by_one(filt, cuts, arrays, e)
        if len(got) != len(usable):
            raise RuntimeError(f"filter {filt.name} returned {len(got)} scores for {len(usable)} cuts")
        for i, s in zip(usable, got):
            scores[i] = s
    return scores, time.perf_counter() - t0


def _record(filt, batch, scores, seconds, nulls) -> None:
    total_s = sum(c.duration for c in batch) or 1.0
    for cut, s in zip(batch, scores):
        if s.value is None:
            nulls.add(cut.id, s.reason or "no reason given")
        _store(cut, filt.name, s, seconds * cut.duration / total_s)


def _batches(in_path, size: int):
    batch = []
    for cut in iter_cuts(in_path):
        batch.append(cut)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _score_resumably(filters, in_path, out_path, nulls, writer, totals) -> None:
    """Stream the input in batches (memory bounded by a batch), appending finished cuts."""
    step = min(f.batch_size for f in filters)
    names = ",".join(f.name for f in filters)
    with tqdm(initial=len(writer.done), desc=f"score {names}", unit="cut", mininterval=5) as bar:
        for batch in _batches(in_path, step):
            totals["cuts"] += len(batch)
            totals["audio_s"] += sum(c.duration for c in batch)
            todo = [c for c in batch if not writer.is_done(c.id)]
            if not todo:
                continue
            for filt in filters:
                scores, seconds = _score_batch(filt, todo)
                _record(filt, todo, scores, seconds, nulls[filt.name])
            for cut in todo:
                writer.add(cut)
            bar.update(len(todo))
    writer.finish(order=(c.id for c in iter_cuts(in_path)))


class WholeSetColumns:
    """What a whole-set filter reads of every cut, in columns: duration, language, and
    each numeric (or boolean) scalar of the supervision's custom dict (the scores of earlier filters and
    stage 3's scalar statistics) as float64 with NaN for absent.  Texts, per-token lists,
    recordings and array manifests are left out: about 100 bytes a cut where a lhotse cut
    (its per-token lists, recording and target manifests) holds several KB, so a whole-set
    filter over 500K cuts no longer holds the corpus.  Items are `_CutView`s, which answer
    what `supervision(cut)`, `teacher_field` and `cut_language` ask of a cut."""

    def __init__(self, cuts):
        from array import array

        # Each id's hash, not the id: the write pass matches cuts by position and only checks
        # that the file still holds the same cuts (8 bytes a cut instead of ~70).
        self.id_hashes = array("q")
        self.durations = array("d")
        self.languages: list[str | None] = []
        self.columns: dict[str, array] = {}
        interned: dict[str, str] = {}
        nan = float("nan")
        for i, cut in enumerate(cuts):
            sup = cut.supervisions[0]
            fields = sup.custom or {}
            language = sup.language or fields.get("teacher_language") or None
            self.id_hashes.append(hash(cut.id))
            self.durations.append(cut.duration)
            self.languages.append(interned.setdefault(language, language) if language else None)
            for key, value in fields.items():
                if not isinstance(value, (int, float)):  # bool is an int
                    continue
                column = self.columns.get(key)
                if column is None:
                    column = self.columns[key] = array("d", [nan]) * i
                column.extend([nan] * (i - len(column)))
                column.append(float(value))
        for column in self.columns.values():
            column.extend([nan] * (len(self.id_hashes) - len(column)))

    def __len__(self) -> int:
        return len(self.id_hashes)

    def __getitem__(self, i: int) -> "_CutView":
        return _CutView(self, i)

    def __iter__(self):
        return (_CutView(self, i) for i in range(len(self.id_hashes)))


class _CutView:
    """One row of WholeSetColumns, shaped as the cut and its supervision (it is both):
    `.id` (its position: ids are not kept), `.duration`, `.supervisions[0].language`,
    `.custom.get(key)` (None when absent)."""

    __slots__ = ("_set", "_i")
    text = None

    def __init__(self, columns: WholeSetColumns, i: int):
        self._set, self._i = columns, i

    id = property(lambda self: f"#{self._i}")
    duration = property(lambda self: self._set.durations[self._i])
    language = property(lambda self: self._set.languages[self._i])
    supervisions = property(lambda self: (self,))
    custom = property(lambda self: self)

    def get(self, key: str, default=None):
        column = self._set.columns.get(key)
        if column is None:
            return default
        value = column[self._i]
        return default if value != value else value  # NaN: absent


def _score_whole_set(filt, in_path, out_path, nulls, totals) -> None:
    """Set-level filters (fusion) depend on every cut: scored in one piece on the columns
    they read (WholeSetColumns), then a second streaming pass writes the full cuts with
    their score, matched by position (both passes read the same file in order)."""
    from array import array

    columns = WholeSetColumns(iter_cuts(in_path))
    totals["cuts"], totals["audio_s"] = len(columns), sum(columns.durations)
    # The filter gets the columns whole (no audio; _score_batch's per-cut fallback means nothing
    # for a score that depends on every cut).
    t0 = time.perf_counter()
    scores = filt.score(columns, [None] * len(columns))
    seconds = time.perf_counter() - t0
    if len(scores) != len(columns):
        raise RuntimeError(f"filter {filt.name} returned {len(scores)} scores for {len(columns)} cuts")
    values = array("d", (float("nan") if s.value is None else s.value for s in scores))
    reasons = {i: s.reason for i, s in enumerate(scores) if s.value is None}
    share = seconds / (totals["audio_s"] or 1.0)
    durations, id_hashes = columns.durations, columns.id_hashes
    del columns, scores

    def scored():
        i = -1
        for i, cut in enumerate(iter_cuts(in_path)):
            if i >= len(id_hashes) or hash(cut.id) != id_hashes[i]:
                raise UdistilError(f"{in_path} changed while {filt.name} scored it (cut {cut.id} at "
                                   f"position {i}); score it again")
            score = Score.null(reasons[i]) if i in reasons else Score(values[i])
            if score.value is None:
                nulls.add(cut.id, score.reason or "no reason given")
            _store(cut, filt.name, score, share * durations[i])
            yield cut
        if i + 1 != len(id_hashes):
            raise UdistilError(f"{in_path} changed while {filt.name} scored it ({i + 1} cuts, not "
                               f"{len(id_hashes)}); score it again")
    write_cuts(scored(), out_path)


# Options that change how fast, never what is scored.
_SPEED_ONLY = {"device", "num_threads", "model_batch_size", "batch_size", "in_path", "out", "overwrite",
               "redo_stale", "verbose", "filter"}


def scoring_fingerprint(filters: list[Filter] | dict[str, dict], in_path) -> dict:
    """The input and each filter's result-changing options (filters, or {name: options}
    before they are built); a model given as a local directory is identified by its files
    (see udistil.parallel.fingerprint)."""
    if not isinstance(filters, dict):
        filters = {f.name: getattr(f, "options", {}) for f in filters}
    options = {}
    for name, built_with in filters.items():
        opts = {}
        for key, value in sorted(built_with.items()):
            if key in _SPEED_ONLY:
                continue
            if key == "dtype" and (value in (None, "float32") or not filter_class(name).runs_model(built_with)):
                # float32 is the CPU default: scores made before --dtype keep their fingerprint.
                continue
            opts[key] = model_identity(value) if isinstance(value, str) and Path(value).is_dir() else value
        options[name] = opts
    return fingerprint([in_path], options=options)


def score_cuts(filters: Filter | list[Filter], in_path, out_path, overwrite: bool = False,
               redo_stale: bool = False) -> dict:
    """Score every cut of `in_path` with one filter (or several, in one pass) into `out_path`.

    Several filters share one read, one pass and one write, which matters for the cheap
    ones (confidence, entropy, nll: the process start-up outweighs their work).  The input
    is streamed (except for whole-set filters), the output is locked while it is written,
    and an output made from another input or with other filter options stops the run
    (or is redone with redo_stale).
    Returns a summary dict (also written beside the output as <out>.stats.json).
    """
    filters = [filters] if isinstance(filters, Filter) else list(filters)
    if len(filters) > 1 and any(f.whole_set for f in filters):
        raise UdistilError("a whole-set filter (fusion) must be scored on its own, after the others")
    out_path = Path(out_path)
    fp = scoring_fingerprint(filters, in_path)
    writer = ResumableCutWriter(out_path, fingerprint=fp, redo=redo_stale, overwrite=overwrite)
    try:
        if writer.finished:
            logger.info("%s exists and matches its fingerprint; skipping (use --overwrite to redo)", out_path)
            return {"skipped_existing": True}
        for filt in filters:
            check = getattr(filt, "check_set", None)
            if check is not None:
                check(iter_cuts(in_path), in_path)
        nulls = {f.name: NullLog(f.name) for f in filters}
        totals = {"cuts": 0, "audio_s": 0.0}
        t0 = time.time()
        if filters[0].whole_set:
            _score_whole_set(filters[0], in_path, out_path, nulls[filters[0].name], totals)
        else:
            _score_resumably(filters, in_path, out_path, nulls, writer, totals)
    finally:
        writer.close()
    wall = time.time() - t0
    summary = {"filters": [f.name for f in filters], "cuts": totals["cuts"], "wall_s": round(wall, 2),
               "audio_s": round(totals["audio_s"], 1),
               "null": {f.name: sum(nulls[f.name].counts.values()) for f in filters},
               "null_reasons": {f.name: dict(nulls[f.name].counts) for f in filters}}
    write_json_atomic(summary, out_path.with_name(out_path.name + ".stats.json"))
    for filt in filters:
        counts = nulls[filt.name].counts
        logger.info("%s: scored %d cuts with %s in %.1f s; %d null (%s)", out_path, totals["cuts"],
                    filt.describe(), wall, sum(counts.values()),
                    ", ".join(f"{r}: {n}" for r, n in counts.most_common()) or "none")
    return summary
