"""What `udistil transcribe` writes for each file: plain text, JSON lines or SRT.

- text:  one line per file, `PATH<TAB>TEXT` (whitespace in the text folded to single spaces,
         so the line splits on its first tab);
- jsonl: one JSON object per file: path, duration, language, text and segments
         (start, end in seconds, text);
- srt:   SubRip subtitles, one cue per non-empty segment.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

FORMATS = ("text", "jsonl", "srt")
EXTENSIONS = {"text": ".txt", "jsonl": ".jsonl", "srt": ".srt"}


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class FileTranscript:
    path: str
    duration: float
    language: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(" ".join(s.text.split()) for s in self.segments if s.text.strip())


def srt_time(seconds: float) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def render(transcript: FileTranscript, fmt: str) -> str:
    """The text written for one file (ends with a newline; SRT with a blank line)."""
    if fmt == "text":
        return f"{transcript.path}\t{transcript.text}\n"
    if fmt == "jsonl":
        return json.dumps({"path": transcript.path, "duration": round(transcript.duration, 3),
                           "language": transcript.language, "text": transcript.text,
                           "segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
                                        for s in transcript.segments]}, ensure_ascii=False) + "\n"
    if fmt == "srt":
        cues = [s for s in transcript.segments if s.text.strip()]
        return "".join(f"{n}\n{srt_time(s.start)} --> {srt_time(s.end)}\n{s.text.strip()}\n\n"
                       for n, s in enumerate(cues, 1))
    raise ValueError(f"unknown format {fmt!r}")
