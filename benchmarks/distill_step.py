#!/usr/bin/env python3
"""Cost of one distillation step: the old live-teacher path against the stored-teacher paths.

Paths, on the same batches (the same cuts, the same pseudo-labels), one timed step each =
forward, loss, backward and AdamW step; the paths alternate step by step so load from
other processes hits them alike:

  live-30s      the old path (the baseline): the teacher's encoder and decoder run on every
                step at 30 s, and the student (same shape) also encodes 30 s of padding
  stored-clip   the teacher's stored targets (never run) and the student at its clip context
  stored-cached (students that keep the teacher's whole encoder) decoder-only: the frozen
                encoder's output comes from the cache (filled once, before timing)

It also reports the top-k truncation error of the stored KL on these real batches: the KL
against the top-k store vs the KL against the live teacher's full distribution, for the
same student logits.

    python benchmarks/distill_step.py --cuts exp/teacher/cuts_train.jsonl.gz \
        --teacher exp/models/teacher --shapes 3-2,6-2 --batch-size 8 --steps 3
(the cuts must come from stage 3 with --targets-dir, i.e. the default run.sh)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def batches_for(cuts, processor, context, targets, batch_size, n_batches, cache=None):
    """`n_batches` batches whose cuts share one context length (as the trainer's sampler makes)."""
    from udistil.student.data import DistillDataset, LabelEncoder, cut_num_samples

    dataset = DistillDataset(processor.feature_extractor,
                             LabelEncoder(processor.tokenizer, multilingual=True, max_length=448),
                             context, targets, cache, "benchmark")
    groups = {}
    for cut in cuts:
        groups.setdefault(context.positions(cut_num_samples(cut)), []).append(cut)
    chunks = [members[i:i + batch_size] for _, members in sorted(groups.items(), key=lambda kv: -len(kv[1]))
              for i in range(0, len(members) - batch_size + 1, batch_size)]
    return [dataset[chunk] for chunk in chunks[:n_batches]]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, help="stage-3 output with stored targets")
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--shapes", default="3-2,6-2", help="student shapes E-D, comma-separated")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per path (after 1 warm-up)")
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    from udistil.data.manifests import read_cuts
    from udistil.models.audio_context import AudioContext, record
    from udistil.models.identity import model_identity
    from udistil.models.spec import load_whisper, resolve_model
    from udistil.student.encoder_cache import EncoderCache, encoder_identity
    from udistil.student.forward import DistillForward, StudentForward, freeze_encoder
    from udistil.student.init import build_student, spread_layer_ids
    from udistil.student.optim import make_optimizer
    from udistil.student.loss import LossWeights, StoredTeacher, distillation_loss, topk_kl
    from udistil.student.stored_targets import StoredTargets

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    teacher_dir = resolve_model(args.teacher)
    teacher, processor = load_whisper(teacher_dir)
    teacher = teacher.float().eval().requires_grad_(False)
    cuts = list(read_cuts(args.cuts))
    weights = LossWeights(alpha_mse=0.0)  # KL + CE: the step cost compared across paths
    n_batches = args.steps + 1
    results = {"batch_size": args.batch_size, "steps": args.steps, "threads": torch.get_num_threads(),
               "shapes": {}}
    workdir = Path(tempfile.mkdtemp(prefix="distill_step_"))

    for shape in args.shapes.split(","):
        n_enc, n_dec = (int(x) for x in shape.split("-"))
        enc_ids = spread_layer_ids(teacher.config.encoder_layers, n_enc)
        dec_ids = spread_layer_ids(teacher.config.decoder_layers, n_dec)
        frozen = n_enc == teacher.config.encoder_layers
        clip = AudioContext("clip")
        students, paths = {}, {}
        for name, context in (("live-30s", AudioContext()), ("stored-clip", clip)):
            student = build_student(teacher, enc_ids, dec_ids, context)
            record(student.config, context)
            if frozen:
                freeze_encoder(student)
            students[name] = student.train()
        targets = StoredTargets(model_identity(teacher_dir), weights.temperature, args.cuts)
        targets.check(cuts)
        live_batches = batches_for(cuts, processor, clip, None, args.batch_size, n_batches)
        stored_batches = batches_for(cuts, processor, clip, targets, args.batch_size, n_batches)
        paths["live-30s"] = (students["live-30s"], live_batches)
        paths["stored-clip"] = (students["stored-clip"], stored_batches)
        if frozen:
            cache = EncoderCache(workdir / "cache", encoder_identity(students["stored-clip"].model.encoder, clip), {})
            forward = StudentForward(students["stored-clip"], frozen_encoder=True)
            for batch in stored_batches:  # fill the cache once, as the first epoch does
                with torch.no_grad():
                    states = forward.encode(batch["input_features"], batch["positions"])
                for cut_id, row in zip(batch["cut_ids"], states.numpy()):
                    cache.put(cut_id, batch["positions"], row)
            cached_batches = batches_for(cuts, processor, clip, targets, args.batch_size, n_batches, cache)
            assert all("encoder_states" in b for b in cached_batches)
            paths["stored-cached"] = (students["stored-clip"], cached_batches)

        def step(name, batch):
            student, _ = paths[name]
            forward = StudentForward(student, frozen)
            optimizer = optimizers[name]
            t0 = time.perf_counter()
            if name == "live-30s":
                live = DistillForward(teacher, forward, frozen, share_encoder=False)
                out = live(batch["input_features"], batch["decoder_input_ids"], 1500)
                parts = distillation_loss(out.student_logits, out.teacher_logits, batch["labels"], weights)
            else:
                s_logits, hidden, _ = forward(batch["decoder_input_ids"], batch["positions"],
                                              input_features=batch.get("input_features"),
                                              encoder_states=batch.get("encoder_states"))
                stored = StoredTeacher(batch["kd_ids"], batch["kd_logprobs"], batch["kd_mask"])
                parts = distillation_loss(s_logits, None, batch["labels"], weights, stored=stored)
            parts.total.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

        # The trainer's optimizer for every path, so the ratio is the forward/backward's.
        optimizers = {name: make_optimizer(paths[name][0], lr=1e-5, weight_decay=0.0) for name in paths}
        times = {name: [] for name in paths}
        for i in range(n_batches):
            for name in paths:
                elapsed = step(name, paths[name][1][i])
                if i > 0:  # the first step warms up allocators and caches
                    times[name].append(elapsed)
        mean = {name: sum(t) / len(t) for name, t in times.items()}
        row = {"step_s": {k: round(v, 3) for k, v in mean.items()},
               "speedup_vs_live_30s": {k: round(mean["live-30s"] / v, 2) for k, v in mean.items()}}

        # Truncation error of the stored top-k KL on these batches, same student logits.
        errors = []
        student = students["stored-clip"].eval()
        for batch, live_batch in zip(stored_batches[:2], live_batches[:2]):
            with torch.no_grad():
                s_logits = StudentForward(student, frozen)(batch["decoder_input_ids"], batch["positions"],
                                                           input_features=batch["input_features"])[0]
                t_logits = teacher(input_features=live_batch["input_features"],
                                   decoder_input_ids=batch["decoder_input_ids"], use_cache=False).logits
            mask = batch["kd_mask"]
            t = weights.temperature
            s_logp = torch.log_softmax(s_logits[mask].double() / t, -1)
            t_logp = torch.log_softmax(t_logits[mask].double() / t, -1)
            full = (t_logp.exp() * (t_logp - s_logp)).sum(-1)
            truncated = topk_kl(s_logp, batch["kd_ids"][mask], batch["kd_logprobs"][mask].double())
            errors.append((float(full.mean()), float(truncated.mean())))
        full_kl = sum(e[0] for e in errors) / len(errors)
        top_kl = sum(e[1] for e in errors) / len(errors)
        row["kl_full"] = round(full_kl, 5)
        row["kl_topk"] = round(top_kl, 5)
        row["kl_topk_relative_error"] = round(abs(full_kl - top_kl) / full_kl, 5)
        row["topk"] = int(stored_batches[0]["kd_ids"].shape[-1])
        results["shapes"][shape] = row
        print(shape, json.dumps(row), flush=True)

    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
