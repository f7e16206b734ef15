"""The weight average (--average-decay): the EMA arithmetic, the swap, and an exact resume."""
from __future__ import annotations

import pytest
import torch

from udistil.errors import UdistilError
from udistil.student.averaging import WeightAverage


def small_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)  # frozen: never averaged
    return model


def test_average_follows_the_ema_by_hand_and_swaps_back():
    model = small_model()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    average = WeightAverage(model, 0.9)
    assert "0.bias" not in average.names and len(average.names) == 3
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model)
    live = {n: p.detach().clone() for n, p in model.named_parameters()}
    with average.swapped_in(model):
        for n, p in model.named_parameters():
            expected = live[n] if n == "0.bias" else 0.9 * start[n] + 0.1 * live[n]
            assert torch.allclose(p, expected)
    for n, p in model.named_parameters():  # the live weights are back, bit for bit
        assert torch.equal(p, live[n])


def test_average_state_round_trip_and_refusals():
    model = small_model()
    average = WeightAverage(model, 0.5)
    with torch.no_grad():
        model[1].weight.mul_(3.0)
    average.update(model)
    other = WeightAverage(small_model(), 0.5)
    other.load_state_dict(average.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(average.shadow, other.shadow))
    unfrozen = small_model()
    unfrozen[0].bias.requires_grad_(True)
    with pytest.raises(UdistilError, match="other weights"):
        WeightAverage(unfrozen, 0.5).load_state_dict(average.state_dict())
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(UdistilError, match="--average-decay"):
            WeightAverage(model, bad)
