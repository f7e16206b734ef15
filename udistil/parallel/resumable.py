"""Per-cut progress that survives a kill.

A long sharded stage (pseudo-labelling, scoring) appends each finished cut as one JSON line
to `<out>.partial.jsonl` and flushes it.  When the process is killed and re-run, the cuts
already in the partial file are not processed again; a truncated last line (the kill
landed mid-write) is dropped.  When the whole input is done, the final manifest is written
atomically and the partial file is removed.  A finished output is never recomputed unless
the caller asks for it.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from lhotse.cut import Cut
from lhotse.serialization import deserialize_item

from udistil.data.manifests import write_cuts

logger = logging.getLogger(__name__)


class ResumableCutWriter:
    def __init__(self, out_path: str | Path):
        self.out_path = Path(out_path)
        self.partial_path = self.out_path.with_name(self.out_path.name + ".partial.jsonl")
        self.done: dict[str, Cut] = {}
        self.skipped: dict[str, str] = {}  # cut id -> reason; also persisted
        self._load_partial()
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.partial_path, "a", encoding="utf-8")

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
                except json.JSONDecodeError:
                    break
                if "skipped" in record:
                    self.skipped[record["id"]] = record["skipped"]
                else:
                    cut = deserialize_item(record)
                    self.done[cut.id] = cut
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

    def add(self, cut: Cut) -> None:
        self._fh.write(json.dumps(cut.to_dict(), ensure_ascii=False) + "\n")
        self._fh.flush()
        self.done[cut.id] = cut

    def skip(self, cut_id: str, reason: str) -> None:
        self._fh.write(json.dumps({"id": cut_id, "skipped": reason}, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.skipped[cut_id] = reason

    def finish(self, order: list[str]) -> Path:
        """Write the final manifest in input order and remove the partial file."""
        self._fh.close()
        cuts = [self.done[i] for i in order if i in self.done]
        write_cuts(cuts, self.out_path)
        os.remove(self.partial_path)
        return self.out_path

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
