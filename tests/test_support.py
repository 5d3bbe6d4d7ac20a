"""The value transform and the categorical (two-hot) support."""

from __future__ import annotations

import torch

from priorzero_pl.models.support import inverse_value_transform, scalar_to_support, support_to_scalar, value_transform


def test_transform_round_trip() -> None:
    x = torch.tensor([-300.0, -12.5, -1.0, 0.0, 0.3, 1.0, 7.0, 119.0, 1000.0], dtype=torch.float64)
    torch.testing.assert_close(inverse_value_transform(value_transform(x)), x, rtol=1e-9, atol=1e-9)


def test_transform_squashes_and_keeps_sign() -> None:
    assert value_transform(torch.tensor(0.0)).item() == 0.0
    assert abs(value_transform(torch.tensor(3.0)).item() - (1.0 + 0.003)) < 1e-6
    assert value_transform(torch.tensor(-3.0)).item() < 0


def test_two_hot_puts_mass_on_neighbouring_bins() -> None:
    # h(3) = 1.003: bins 1 and 2 (indices S+1, S+2) with weights 0.997 / 0.003.
    probs = scalar_to_support(torch.tensor([3.0, 0.0]), support_size=5)
    assert probs.shape == (2, 11)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert abs(probs[0, 6].item() - 0.997) < 1e-5 and abs(probs[0, 7].item() - 0.003) < 1e-5
    assert probs[1, 5].item() == 1.0


def test_support_round_trip_and_clipping() -> None:
    x = torch.tensor([[-50.0, -2.0, 0.0], [0.5, 8.0, 110.0]])
    decoded = support_to_scalar(torch.log(scalar_to_support(x, 10)), 10)
    torch.testing.assert_close(decoded, x, rtol=1e-4, atol=1e-4)
    # Beyond the support the target saturates at the edge bin.
    edge = scalar_to_support(torch.tensor([1e6]), 10)
    assert edge[0, -1].item() == 1.0
