"""The CPU inference fast path (``tgecnet_ref.model.layers.fast_inference``, ``Fuser(fast=True)``): the same
functions as the reference layers up to float rounding, the same expert choices, taken only without autograd
on contiguous float32 CPU tensors; the reference path stays selectable. Timings are in
benchmarks/cpu_fuse_profile.py, not here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tgecnet_ref.config import load_config
from tgecnet_ref.infer import Fuser, reuse_freed_memory
from tgecnet_ref.model import TGECNet
from tgecnet_ref.model.layers import GDFN, MDTA, LayerNorm2d, TransformerBlock, fast_inference, fast_path
from tgecnet_ref.model.moe import NoisyTopKGate, PixelMoE
from tgecnet_ref.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _perturb(module: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Move every parameter off its initial value (layer-norm weights 1 and biases 0, temperatures 1, zero
    noise weights), so that each term of the formulas is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return module


def _both(module: torch.nn.Module, *args: torch.Tensor):
    with torch.no_grad():
        ref = module(*args)
        with fast_inference():
            fast = module(*args)
    return ref, fast


@pytest.mark.parametrize("kind", ["WithBias", "BiasFree"])
def test_layer_norm_fast_equals_reference(kind: str) -> None:
    ln = _perturb(LayerNorm2d(12, kind))
    x = torch.randn(2, 12, 20, 24) * 3 + 1
    ref, fast = _both(ln, x)
    assert fast.is_contiguous() and fast.shape == ref.shape
    assert torch.allclose(fast, ref, atol=1e-5, rtol=1e-5)
    assert not torch.equal(fast, x)


@pytest.mark.parametrize(("dim", "heads", "bias"), [(16, 1, False), (24, 4, True), (8, 2, False)])
def test_attention_and_feed_forward_fast_equal_reference(dim: int, heads: int, bias: bool) -> None:
    torch.manual_seed(dim)
    x, r = torch.randn(2, dim, 24, 32), torch.randn(2, dim, 24, 32)
    for layer in (_perturb(MDTA(dim, heads, bias)), _perturb(GDFN(dim, 2.66, bias))):
        with torch.no_grad():
            ref = r + layer(x)
            with fast_inference():
                fast = layer.forward_residual(x, r)
        assert fast.is_contiguous() and fast.shape == ref.shape
        assert (fast - ref).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max())), type(layer).__name__
    block = _perturb(TransformerBlock(dim, heads, 2.0, bias))
    ref, fast = _both(block, x)
    assert (fast - ref).abs().max() <= 2e-5 * max(1.0, float(ref.abs().max()))


def test_the_fast_inference_switch_is_per_thread() -> None:
    """Inference in one thread does not switch the layers of another thread (a training loop) to the fast path."""
    import threading

    x = torch.randn(1, 8, 16, 16)
    inside, other = threading.Event(), []
    release = threading.Event()

    def infer() -> None:
        with fast_inference(), torch.no_grad():
            other.append(fast_path(x))
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=infer)
    worker.start()
    assert inside.wait(10)
    with torch.no_grad():
        assert not fast_path(x)  # this thread never entered fast_inference
    release.set()
    worker.join()
    assert other == [True]


def test_fast_path_is_taken_only_without_autograd_on_contiguous_float32() -> None:
    x = torch.randn(1, 8, 16, 16)
    assert not fast_path(x)  # outside fast_inference
    with fast_inference():
        with torch.no_grad():
            assert fast_path(x)
            assert not fast_path(x.contiguous(memory_format=torch.channels_last))
            assert not fast_path(x.double())
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert not fast_path(x)
            with fast_inference(False):
                assert not fast_path(x)
        assert not fast_path(x)  # autograd on: the training forward is the reference one
    # the training forward under fast_inference is the reference computation, bit for bit, and differentiable
    block = _perturb(TransformerBlock(8, 2, 2.0))
    xg = torch.randn(1, 8, 16, 16, requires_grad=True)
    ref = block(xg)
    with fast_inference():
        same = block(xg)
    assert torch.equal(ref, same)
    same.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def _record_routing(moe: PixelMoE) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Capture ``(logits, indices)`` of every routing decision of ``moe``'s gate."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    route = moe.gate.route

    def recording(clean, logits, noise_std=None):
        out = route(clean, logits, noise_std)
        seen.append((logits.detach().clone(), out.indices.clone()))
        return out

    moe.gate.route = recording
    return seen


def _same_choices_or_near_tie(ref: tuple[torch.Tensor, torch.Tensor], fast: tuple[torch.Tensor, torch.Tensor],
                              k: int, tie: float = 1e-4) -> int:
    """Number of tokens whose expert set differs; asserts that each one is a near-tie of the k-th and
    (k+1)-th logits (rounding may flip those)."""
    (logits, idx), (_, idx_fast) = ref, fast
    differ = (idx.sort(dim=1).values != idx_fast.sort(dim=1).values).any(dim=1)
    if differ.any():
        top = logits[differ].topk(k + 1, dim=1).values
        assert ((top[:, k - 1] - top[:, k]).abs() < tie).all(), "an expert choice changed without a near-tie"
    return int(differ.sum())


def test_moe_fast_path_same_experts_and_output() -> None:
    torch.manual_seed(1)
    moe = _perturb(PixelMoE(8, 16, num_experts=4, top_k=2, ratio=2.0)).eval()
    x, prompt = torch.randn(2, 8, 32, 40), torch.randn(2, 16)
    seen = _record_routing(moe)
    (y_ref, bal_ref), (y_fast, bal_fast) = _both(moe, x, prompt)
    assert len(seen) == 2
    assert _same_choices_or_near_tie(seen[0], seen[1], k=2) == 0
    assert y_fast.is_contiguous()  # NCHW out, so the next layers stay on the fast path
    assert torch.allclose(y_fast, y_ref, atol=1e-5, rtol=1e-5)
    assert torch.allclose(bal_fast, bal_ref, rtol=1e-5, atol=1e-7)
    # training mode with gating noise: the reference path (noise, smooth load), even without autograd
    moe.train()
    with torch.no_grad(), fast_inference():
        torch.manual_seed(5)
        y_noisy, _ = moe(x, prompt)
    with torch.no_grad():
        torch.manual_seed(5)
        y_noisy_ref, _ = moe(x, prompt)
    assert torch.equal(y_noisy, y_noisy_ref)


def test_gate_route_is_the_forward_decision() -> None:
    gate = _perturb(NoisyTopKGate(6, 5, 3)).eval()
    x = torch.randn(50, 6)
    with torch.no_grad():
        a = gate(x)
        logits = x @ gate.w_gate
        b = gate.route(logits, logits)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.gates, b.gates) and torch.equal(a.load, b.load)


def test_whole_model_fast_equals_reference_tiny() -> None:
    cfg = load_config("tiny").model
    torch.manual_seed(0)
    model = _perturb(TGECNet(cfg), scale=0.05).eval()
    moes = [*model.restorer.degrad_moe.values(), model.fusion.fusion_moe]
    seen = [_record_routing(m) for m in moes]
    g = torch.Generator().manual_seed(2)
    vis, ir = torch.rand(1, 1, 96, 128, generator=g), torch.rand(1, 1, 96, 128, generator=g)
    ref, fast = _both(model, vis, ir)
    for s, m in zip(seen, moes):
        assert len(s) == 2
        assert _same_choices_or_near_tie(s[0], s[1], m.top_k) == 0
    for a, b in zip(ref, fast):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-4 * max(1.0, float(a.abs().max()))


def test_fuser_fast_by_default_reference_selectable(tmp_path: Path) -> None:
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = _perturb(TGECNet(cfg.model), scale=0.05)
    path = save_checkpoint(tmp_path / "s2.pt", {"stage": 2, "config": cfg.to_dict(), "model": model.state_dict()})
    fast, ref = Fuser(path, device="cpu"), Fuser(path, device="cpu", fast=False)
    assert fast.fast and not ref.fast
    rng = np.random.default_rng(0)
    vis, ir = rng.integers(0, 256, (2, 50, 70), dtype=np.uint8)  # padded to 56x72 inside
    a, b = fast.fuse_luminance(vis, ir), ref.fuse_luminance(vis, ir)
    assert a.shape == (50, 70) and a.dtype == np.float32
    assert float(np.abs(a - b).max()) <= 1e-4
    rgb = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    assert np.abs(fast.fuse(rgb, ir).astype(int) - ref.fuse(rgb, ir).astype(int)).max() <= 1
    # the public-compat forward (level-1 MoE bypassed) takes the fast path too
    pub = TGECNet(dataclasses.replace(cfg.model, compat="public"))
    pub.load_state_dict(model.state_dict())
    x = torch.from_numpy(vis[:48, :64] / 255.0).float()[None, None]
    y = torch.from_numpy(ir[:48, :64] / 255.0).float()[None, None]
    r, f = _both(pub.eval(), x, y)
    assert float((r.fused - f.fused).abs().max()) <= 1e-4


def test_reuse_freed_memory_is_idempotent() -> None:
    import platform

    first = reuse_freed_memory()
    assert reuse_freed_memory() == first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first
        x = torch.empty(64 << 20, dtype=torch.uint8)  # a block above glibc's mmap threshold still works
        x.fill_(7)
        assert int(x[-1]) == 7
