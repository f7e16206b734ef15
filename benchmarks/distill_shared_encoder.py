#!/usr/bin/env python3
"""Training-step time with the frozen encoder computed once (shared) vs both full models.

The student keeps the teacher's whole encoder (frozen) and `--decoder-layers` decoder
layers.  Each timed step = teacher and student forward, distillation loss, backward,
AdamW step, on the same batches; the two paths alternate step by step so that load from
other processes hits both alike, and their losses on the first batch are compared.

    python benchmarks/distill_shared_encoder.py --teacher exp/models/whisper-base \
        --decoder-layers 2 --batch-size 4 --steps 4 --num-threads 2
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def load_batches(cuts, processor, multilingual, batch_size, n_batches):
    from udistil.student.data import DistillDataset, LabelEncoder

    dataset = DistillDataset(processor.feature_extractor,
                             LabelEncoder(processor.tokenizer, multilingual=multilingual, max_length=448))
    batches = []
    for i in range(n_batches):
        chunk = cuts[i * batch_size:(i + 1) * batch_size]
        if len(chunk) < batch_size:
            break
        batches.append(dataset[chunk])
    return batches


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--decoder-layers", type=int, default=2)
    parser.add_argument("--cuts", default=None, help="manifest (teacher_text, else the reference, "
                        "is the label); default: freshly synthesised mini-corpus test cuts")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per path (after 1 warm-up)")
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    from common import mini_test_cuts
    from udistil.data.manifests import read_cuts, supervision
    from udistil.models.spec import load_whisper
    from udistil.student.forward import DistillForward, freeze_encoder, two_model_forward
    from udistil.student.init import build_student, spread_layer_ids
    from udistil.student.loss import distillation_loss

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    teacher, processor = load_whisper(args.teacher)
    n_enc = teacher.config.encoder_layers
    student0 = build_student(teacher, list(range(n_enc)),
                             spread_layer_ids(teacher.config.decoder_layers, args.decoder_layers))
    teacher = teacher.to(device).eval().requires_grad_(False)

    tmp = tempfile.TemporaryDirectory()
    cuts = list(read_cuts(args.cuts)) if args.cuts else list(mini_test_cuts(Path(tmp.name), 12))
    cuts = sorted(cuts, key=lambda c: c.id)
    for cut in cuts:
        sup = supervision(cut)
        sup.custom = dict(sup.custom or {})
        sup.custom.setdefault("teacher_text", sup.text)
    multilingual = bool(getattr(teacher.generation_config, "is_multilingual", True))
    batches = load_batches(cuts, processor, multilingual, args.batch_size, args.steps + 1)

    paths = {}
    for name in ("shared", "two_models"):
        student = copy.deepcopy(student0).to(device).train()
        freeze_encoder(student)
        student.model.encoder.eval()
        optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-5)
        paths[name] = {"student": student, "optimizer": optimizer, "times": [], "losses": []}
    shared_forward = DistillForward(teacher, paths["shared"]["student"], frozen_encoder=True, share_encoder=True)
    forwards = {"shared": shared_forward,
                "two_models": lambda f, d: two_model_forward(teacher, paths["two_models"]["student"], f, d)}

    for i, batch in enumerate(batches):
        features = batch["input_features"].to(device)
        inputs, labels = batch["decoder_input_ids"].to(device), batch["labels"].to(device)
        for name, path in paths.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            parts = distillation_loss(*forwards[name](features, inputs), labels)
            parts.total.backward()
            path["optimizer"].step()
            path["optimizer"].zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i > 0:  # step 0 is the warm-up
                path["times"].append(time.perf_counter() - start)
            path["losses"].append(float(parts.total.detach()))

    mean = {name: sum(p["times"]) / len(p["times"]) for name, p in paths.items()}
    result = {
        "teacher": args.teacher, "device": str(device), "threads": torch.get_num_threads(),
        "student_layers": f"{n_enc}-{args.decoder_layers}", "batch_size": args.batch_size,
        "timed_steps": len(paths["shared"]["times"]),
        "step_s": {name: round(v, 3) for name, v in mean.items()},
        "speedup": round(mean["two_models"] / mean["shared"], 2),
        "first_batch_loss": {name: p["losses"][0] for name, p in paths.items()},
        "losses_match": all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in
                            zip(paths["shared"]["losses"], paths["two_models"]["losses"])),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
