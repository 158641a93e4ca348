import math

import torch

from aaclip_med.model.adapters import ResidualAdapter, mix_adapter


def test_adapter_is_square_linear_without_bias_plus_leaky_relu():
    adapter = ResidualAdapter(16)
    linear, act = adapter.fc[0], adapter.fc[1]
    assert linear.weight.shape == (16, 16)
    assert linear.bias is None
    assert isinstance(act, torch.nn.LeakyReLU) and act.negative_slope == 0.01


def test_adapter_xavier_uniform_bound():
    torch.manual_seed(0)
    weight = ResidualAdapter(64).fc[0].weight
    bound = math.sqrt(6.0 / (64 + 64))
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.9 * bound  # spread over the whole Xavier range


def test_rescaled_adapter_output_has_input_norm_and_lambda_mixing():
    torch.manual_seed(1)
    adapter = ResidualAdapter(32)
    x = torch.randn(2, 5, 32) * 3.0
    a = adapter(x)
    rescaled = a * x.norm(dim=-1, keepdim=True) / a.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(rescaled.norm(dim=-1), x.norm(dim=-1))
    mixed = mix_adapter(x, adapter, 0.1)
    torch.testing.assert_close(mixed, 0.1 * rescaled + 0.9 * x)


def test_lambda_zero_is_identity_and_one_is_pure_adapter():
    torch.manual_seed(2)
    adapter = ResidualAdapter(8)
    x = torch.randn(3, 4, 8)
    torch.testing.assert_close(mix_adapter(x, adapter, 0.0), x)
    pure = mix_adapter(x, adapter, 1.0)
    torch.testing.assert_close(pure.norm(dim=-1), x.norm(dim=-1))


def test_zero_adapter_output_does_not_produce_nan():
    adapter = ResidualAdapter(4)
    torch.nn.init.zeros_(adapter.fc[0].weight)
    x = torch.randn(1, 2, 4)
    out = mix_adapter(x, adapter, 0.1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, 0.9 * x)
