"""Per-cut progress that survives a kill, with memory bounded by the batch, not the corpus.

A long sharded stage (pseudo-labelling, scoring) appends each finished cut as one JSON line
to `<out>.partial.jsonl` and flushes it.  When the process is killed and re-run, the cuts
already in the partial file are not processed again; a truncated last line (the kill
landed mid-write) is dropped.  When the whole input is done, the final manifest is written
atomically, in input order, by copying lines from the partial file (only cut ids and byte
offsets are held in memory), and the partial file is removed.  A finished output is never
recomputed unless the caller asks for it.

The writer also
  * holds the output's lock (udistil.parallel.lock) from start to finish, so a second run
    on the same output stops cleanly instead of appending to the same partial file;
  * checks the output's fingerprint (udistil.parallel.fingerprint) before resuming, so a
    partial file made with another model, input or options is never continued.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

from lhotse.cut import Cut

from udistil.data.manifests import write_json_lines
from udistil.errors import ManifestError
from udistil.parallel.fingerprint import check_or_write, remove_output
from udistil.parallel.lock import OutputLock

logger = logging.getLogger(__name__)


class ResumableCutWriter:
    def __init__(self, out_path: str | Path, fingerprint: dict | None = None, redo: bool = False,
                 overwrite: bool = False):
        self.out_path = Path(out_path)
        self.partial_path = self.out_path.with_name(self.out_path.name + ".partial.jsonl")
        self.done: set[str] = set()
        self.skipped: dict[str, str] = {}  # cut id -> reason; also persisted
        self._fh = None  # opened on the first write: no empty partial file beside other work
        self._lock = OutputLock(self.out_path).acquire()
        try:
            if overwrite:  # under the lock: never delete what another live run is writing
                remove_output(self.out_path)
            if fingerprint is not None:
                check_or_write(self.out_path, fingerprint, redo=redo)
            # A finished output (its fingerprint checked) is reused as it is: no partial file.
            self.finished = self.out_path.exists()
            if not self.finished:
                self._load_partial()
        except BaseException:
            self._lock.release()
            raise

    def _load_partial(self) -> None:
        if not self.partial_path.exists():
            return
        good_bytes = 0
        with open(self.partial_path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # truncated by a kill mid-write
                try:
                    record = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    break
                if "skipped" in record:
                    self.skipped[record["id"]] = record["skipped"]
                else:
                    self.done.add(record["id"])
                good_bytes += len(raw)
        if good_bytes < self.partial_path.stat().st_size:
            logger.warning("%s: dropping a truncated last line left by an interrupted run", self.partial_path)
            with open(self.partial_path, "r+b") as fh:
                fh.truncate(good_bytes)
        if self.done or self.skipped:
            logger.info("%s: resuming; %d cuts already done, %d skipped", self.out_path,
                        len(self.done), len(self.skipped))

    def is_done(self, cut_id: str) -> bool:
        return cut_id in self.done or cut_id in self.skipped

    def _append(self, line: str) -> None:
        try:
            if self._fh is None:
                self._fh = open(self.partial_path, "a", encoding="utf-8")
            self._fh.write(line)
            self._fh.flush()
        except OSError as e:  # a full disk names no file by itself
            raise OSError(e.errno, e.strerror, str(self.partial_path)) from e

    def add(self, cut: Cut) -> None:
        self._append(json.dumps(cut.to_dict(), ensure_ascii=False) + "\n")
        self.done.add(cut.id)

    def skip(self, cut_id: str, reason: str) -> None:
        self._append(json.dumps({"id": cut_id, "skipped": reason}, ensure_ascii=False) + "\n")
        self.skipped[cut_id] = reason

    def _offsets(self) -> dict[str, int]:
        """Byte offset of each done cut's line in the partial file (the last one wins)."""
        offsets, pos = {}, 0
        if not self.partial_path.exists():
            return offsets
        with open(self.partial_path, "rb") as fh:
            for raw in fh:
                record = json.loads(raw)
                if "skipped" not in record:
                    offsets[record["id"]] = pos
                pos += len(raw)
        return offsets

    def _lines_in_order(self, order: Iterable[str], written: list[int]):
        offsets = self._offsets()
        if not offsets:
            return
        with open(self.partial_path, "rb") as fh:
            for cut_id in order:
                if cut_id in offsets:
                    fh.seek(offsets[cut_id])
                    written[0] += 1
                    yield fh.readline().decode("utf-8")

    def finish(self, order: Iterable[str]) -> Path:
        """Write the final manifest in input order (ids from `order`) and remove the partial file."""
        self.close_partial()
        written = [0]
        write_json_lines(self._lines_in_order(order, written), self.out_path)
        if written[0] != len(self.done):
            self.out_path.unlink()
            raise ManifestError(f"{self.partial_path}: {len(self.done) - written[0]} finished cuts are not "
                                "in the input; the partial file belongs to another input (delete it to redo)")
        self.partial_path.unlink(missing_ok=True)
        return self.out_path

    def close_partial(self) -> None:
        if self._fh is not None and not self._fh.closed:
            try:
                self._fh.close()
            except OSError:
                pass  # the error was raised where the write failed; what reached the disk stays

    def close(self) -> None:
        """Close the partial file and release the lock (the partial file stays for a resume)."""
        try:
            self.close_partial()
        finally:
            self._lock.release()
