import math

import pytest
import torch

from aaclip_med.keys import Domain
from aaclip_med.model.smoothing import SMOOTHING, gaussian_blur, gaussian_kernel1d


def test_domain_kernels_match_spec():
    assert SMOOTHING[Domain.INDUSTRIAL] == (7, 1.0)
    assert SMOOTHING[Domain.MEDICAL] == (9, 1.5)


@pytest.mark.parametrize(("size", "sigma"), [(7, 1.0), (9, 1.5)])
def test_kernel_is_normalised_sampled_gaussian(size, sigma):
    kernel = gaussian_kernel1d(size, sigma, dtype=torch.float64)
    raw = [math.exp(-((i - size // 2) ** 2) / (2 * sigma**2)) for i in range(size)]
    expected = torch.tensor(raw, dtype=torch.float64) / sum(raw)
    torch.testing.assert_close(kernel, expected)


def test_impulse_response_is_outer_product_of_kernels():
    size, sigma = 7, 1.0
    impulse = torch.zeros(1, 1, 15, 15, dtype=torch.float64)
    impulse[0, 0, 7, 7] = 1.0
    out = gaussian_blur(impulse, size, sigma)
    k = gaussian_kernel1d(size, sigma, dtype=torch.float64)
    torch.testing.assert_close(out[0, 0, 4:11, 4:11], torch.outer(k, k))


def test_reflect_border_keeps_constant_and_mirrors_edges():
    const = torch.full((1, 1, 9, 9), 2.5)
    torch.testing.assert_close(gaussian_blur(const, 9, 1.5), const)
    # An impulse one pixel from the left edge: reflect padding (edge pixel not repeated) mirrors it
    # onto padded column -1, so output column 0 sees it twice, at distance 1 on both sides.
    # Zero or replicate padding would give k[4] alone.
    impulse = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    impulse[0, 0, 4, 1] = 1.0
    out = gaussian_blur(impulse, 7, 1.0)
    k = gaussian_kernel1d(7, 1.0, dtype=torch.float64)
    assert out[0, 0, 4, 0].item() == pytest.approx((k[3] * 2 * k[2]).item(), rel=1e-12)


def test_invalid_kernel_arguments():
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel1d(4, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel1d(5, 0.0)
