"""TG-ECNet losses: Sobel operator against scipy, the fusion gradient loss's argument roles, stage totals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from tgecnet_ref.config import StageConfig
from tgecnet_ref.losses import fusion_loss, gradient_loss, restoration_loss, sobel


def _sobel_ref(a: np.ndarray) -> np.ndarray:
    # correlation with [[-1,0,1],[-2,0,2],[-1,0,1]] and [[1,2,1],[0,0,0],[-1,-2,-1]], zero padding
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    ky = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    gx = ndimage.correlate(a, kx, mode="constant", cval=0.0)
    gy = ndimage.correlate(a, ky, mode="constant", cval=0.0)
    return np.abs(gx) + np.abs(gy)


def test_sobel_matches_scipy_per_channel() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 9, 11))
    got = sobel(torch.from_numpy(a)).numpy()
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(got[b, c], _sobel_ref(a[b, c]), rtol=1e-12, atol=1e-12)


def test_gradient_loss_targets_the_max_of_the_sources_gradients() -> None:
    rng = np.random.default_rng(1)
    f, v, i = (rng.random((1, 1, 16, 16)) for _ in range(3))
    expected = np.mean(np.abs(_sobel_ref(f[0, 0]) - np.maximum(_sobel_ref(v[0, 0]), _sobel_ref(i[0, 0]))))
    got = float(gradient_loss(torch.from_numpy(f), torch.from_numpy(v), torch.from_numpy(i)))
    assert got == pytest.approx(expected, rel=1e-12)


def test_gradient_loss_roles_are_not_interchangeable() -> None:
    """A fused image that is a flat copy of neither source scores badly; the sources' roles are symmetric."""
    rng = np.random.default_rng(2)
    textured = torch.from_numpy(rng.random((1, 1, 16, 16)))
    flat = torch.zeros((1, 1, 16, 16), dtype=torch.float64)  # zero padding: a constant 0 has no edges
    # fused = the textured source, the other source flat: the joint gradient is the textured one -> 0
    assert float(gradient_loss(textured, textured, flat)) == 0.0
    assert float(gradient_loss(textured, flat, textured)) == 0.0
    # a flat fused image misses the joint gradient whichever source carries it
    assert float(gradient_loss(flat, textured, flat)) > 0.1
    # the fused image is never part of the target: a different fused image changes the loss
    assert float(gradient_loss(flat, textured, textured)) != float(gradient_loss(textured, textured, flat))


def test_restoration_loss_terms_and_weights() -> None:
    cfg = StageConfig(w_l1=1.0, w_grad=10.0, w_balance=0.1)
    clean = torch.rand(2, 1, 16, 16)
    zero = restoration_loss(clean.clone(), clean, torch.tensor(0.0), cfg)
    assert float(zero["loss"]) == 0.0
    r = clean + 0.1
    out = restoration_loss(r, clean, torch.tensor(2.0), cfg)
    grad = torch.mean(torch.abs(sobel(r) - sobel(clean)))
    assert float(out["l1"]) == pytest.approx(0.1, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(0.1 + 10 * float(grad) + 0.2, rel=1e-5)


def test_fusion_loss_total() -> None:
    cfg = StageConfig(w_vis=1.0, w_ir=1.0, w_max=1.0, w_grad=5.0, w_balance=0.1)
    torch.manual_seed(0)
    f, v, i = torch.rand(3, 2, 1, 16, 16)
    out = fusion_loss(f, v, i, torch.tensor(0.5), cfg)
    expected = ((f - v).abs().mean() + (f - i).abs().mean() + (f - torch.maximum(v, i)).abs().mean()
                + 5 * gradient_loss(f, v, i) + 0.05)
    assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-6)
