#!/usr/bin/env python
"""Would the teacher's cross-attention, or its audio language identification, catch bad
pseudo-labels that its token statistics miss?  A measurement, not a filter.

    . ./path.sh
    python benchmarks/attention_signals.py --model exp/models/teacher \
        --in exp/scores/cuts_dev.jsonl.gz --out attention_signals.jsonl

Reads a stage-4 CutSet (the teacher's tokens, the stage-4 filter columns and the
reference), runs the teacher's encoder on each clip (30 s context) and one teacher-forced
decoder pass over its own pseudo-label with the cross-attention of the model's alignment
heads (`generation_config.alignment_heads`, the heads Whisper's word timestamps use), and
prints each signal's AUROC for true WER > 80 (the filter report's definition) beside the
stage-4 filters, with its Spearman correlation to `entropy`.

The signals, per clip (F = the clip's encoder frames, 50 per second):
  coverage     share of the clip's 0.5 s bins that some token's attention peak falls in
               (low: words of the audio were never written: a deletion or a truncation);
  end_reach    last attention peak / F (low: the transcript stops before the speech does);
  back_jumps   share of tokens whose peak is over 0.5 s before the previous token's (a loop
               re-reading the audio);
  spread       mean standard deviation of a token's attention, / F (diffuse attention: the
               teacher does not know where the word is);
  outside      mean attention mass beyond the clip (on the 30 s window's padding);
  language_p   Whisper's audio language identification: P(the cut's language) among the
               language tokens at the first step (low: the audio does not sound like it);
  no_speech    P(<|nospeech|>) at the first step.
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from scipy.stats import spearmanr

from udistil.data.manifests import read_cuts, supervision
from udistil.evaluate.scoring import utterance_wer
from udistil.filters.base import cut_language, teacher_field, teacher_text
from udistil.filters.fusion_calibration import oriented_column
from udistil.evaluate.scoring import BAD_WER
from udistil.report.filter_quality import auroc, evaluate_filter
from udistil.teacher.transcriber import DecodeOptions, Transcriber

# Signal -> True when higher means a worse pseudo-label.
SIGNALS = {"coverage": False, "end_reach": False, "back_jumps": True, "spread": True, "outside": True,
           "language_p": False, "no_speech": True}
FRAMES_PER_SECOND = 50
BIN_FRAMES = 25           # 0.5 s
JUMP_FRAMES = 25
# Attention this close past the clip's end still belongs to the clip (the encoder's receptive field).
END_MARGIN_FRAMES = 10


def attention_signals(attention: torch.Tensor, frames: int) -> dict:
    """Signals of one clip from the alignment heads' attention [heads, tokens, positions]."""
    if attention.shape[1] == 0:
        return {"coverage": 0.0, "end_reach": 0.0, "back_jumps": 0.0, "spread": 1.0, "outside": 1.0}
    mean = attention.mean(0)
    inside = mean[:, :frames + END_MARGIN_FRAMES]
    inside = inside / inside.sum(-1, keepdim=True).clamp_min(1e-9)
    peaks = inside.argmax(-1).numpy()
    positions = torch.arange(inside.shape[1], dtype=torch.float32)
    centre = (inside * positions).sum(-1)
    deviation = ((positions - centre[:, None]) ** 2 * inside).sum(-1).sqrt()
    return {"coverage": len(set((peaks // BIN_FRAMES).tolist())) / math.ceil(frames / BIN_FRAMES),
            "end_reach": float(peaks.max() / frames),
            "back_jumps": float(np.sum(np.diff(peaks) < -JUMP_FRAMES) / len(peaks)),
            "spread": float(deviation.mean() / frames),
            "outside": float(mean[:, frames + END_MARGIN_FRAMES:].sum(-1).mean())}


@torch.inference_mode()
def measure(transcriber: Transcriber, cuts, batch_size: int) -> list[dict]:
    model, rules = transcriber.model, transcriber.rules
    # Cross-attention weights are returned by the eager attention only.
    model.set_attn_implementation("eager")
    heads = model.generation_config.alignment_heads
    language_ids = rules.language_ids()
    no_speech_id = rules.no_timestamps - 1   # <|nospeech|> comes just before <|notimestamps|>
    decoder, project = model.get_decoder(), model.get_output_embeddings()
    rows = []
    for start in range(0, len(cuts), batch_size):
        batch = cuts[start:start + batch_size]
        audios = [c.load_audio()[0].astype(np.float32) for c in batch]
        encoded = transcriber.encode(audios)
        first = decoder(input_ids=torch.full((len(batch), 1), rules.start_of_transcript),
                        encoder_hidden_states=encoded).last_hidden_state[:, -1]
        first_logprobs = torch.log_softmax(project(first).float(), dim=-1)
        for i, cut in enumerate(batch):
            language = cut_language(cut)
            tokens = list(teacher_field(cut, "teacher_tokens") or [])
            prompt = rules.prompt(language, timestamps=False)
            out = decoder(input_ids=torch.tensor([prompt + tokens]), encoder_hidden_states=encoded[i:i + 1],
                          output_attentions=True)
            # Rows that predict each pseudo-label token: from the prompt's last position on.
            attention = torch.stack([out.cross_attentions[layer][0, head] for layer, head in heads])
            attention = attention[:, len(prompt) - 1:len(prompt) - 1 + len(tokens)]
            frames = min(attention.shape[-1], math.ceil(cut.duration * FRAMES_PER_SECOND))
            language_probs = torch.softmax(first_logprobs[i, language_ids], dim=-1)
            row = {"id": cut.id, "true_wer": utterance_wer(supervision(cut).text, teacher_text(cut), language),
                   **attention_signals(attention, frames),
                   "language_p": float(language_probs[language_ids == rules.lang_to_id[language]]),
                   "no_speech": float(first_logprobs[i, no_speech_id].exp())}
            rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the stage-3 teacher (exp/models/teacher)")
    parser.add_argument("--in", dest="cuts", required=True, help="a stage-4 scores CutSet with references")
    parser.add_argument("--out", help="write each clip's signals here (JSON lines)")
    parser.add_argument("--limit", type=int, default=0, help="the first N cuts only (0 = all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--compare", default="confidence,entropy,nll,tail_nll,word_nll,language_confidence,fusion",
                        help="stage-4 columns printed beside the new signals")
    args = parser.parse_args(argv)
    cuts = [c for c in read_cuts(args.cuts) if teacher_field(c, "teacher_tokens") is not None
            and (supervision(c).text or "").strip()]
    cuts = cuts[:args.limit] if args.limit else cuts
    transcriber = Transcriber.from_spec(args.model, DecodeOptions(batch_size=args.batch_size))
    rows = measure(transcriber, cuts, args.batch_size)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    bad = [r["true_wer"] > BAD_WER for r in rows]
    entropy = oriented_column(cuts, "entropy")
    print(f"{args.cuts}: {len(rows)} cuts, {sum(bad)} with true WER > {BAD_WER:g}")
    print("| signal | AUROC (true WER > 80) | Spearman with entropy |\n|---|---|---|")
    true_wer = [r["true_wer"] for r in rows]
    for name in [c for c in args.compare.split(",") if c]:
        value = evaluate_filter(name, cuts, true_wer, equal_fraction=1.0)["auroc"]
        print(f"| {name} (stage 4) | {'-' if value is None else f'{value:.3f}'} | |")
    for name, higher_is_worse in SIGNALS.items():
        oriented = [r[name] if higher_is_worse else -r[name] for r in rows]
        # A signal that never varies (no clip jumped back) has no correlation and chance AUROC.
        rho = (f"{spearmanr(oriented, [e if e is not None else 0.0 for e in entropy]).statistic:.2f}"
               if len(set(oriented)) > 1 else "-")
        print(f"| {name} | {auroc(oriented, bad):.3f} | {rho} |")


if __name__ == "__main__":
    main()
