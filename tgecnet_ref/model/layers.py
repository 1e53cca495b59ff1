"""Restormer building blocks (Zamir et al., CVPR 2022, "Restormer"), as used by PromptIR and TG-ECNet.

Every layer works on ``(B, C, H, W)`` tensors and keeps the dtype of its input (no casts to half precision: mixed
precision is the caller's business, through ``torch.autocast``).

Inference fast path (:func:`fast_inference`): with autograd off, on CPU float32 NCHW tensors, the layers compute
the same functions with fewer passes over memory (the small configurations are memory-bound on a CPU: see
``docs/tgecnet.md``, "CPU inference"): the layer norm reduces over the channel axis in place instead of
permuting to channels-last and back; MDTA reads the attention logits and the L2 norms from ``Q K^T`` and the row
norms, folds ``project_out`` into the ``C x C`` attention matrix and adds the residual in the same matrix product;
GDFN gates in place and adds the residual in its output product. Results equal the reference path up to float
rounding. The training forward (autograd on) always takes the reference path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

_STATE = threading.local()  # ``fast``: whether this thread is inside fast_inference()


@contextmanager
def fast_inference(enabled: bool = True) -> Iterator[None]:
    """Within the block, layers take the inference fast path where :func:`fast_path` allows (see the module
    docstring); ``enabled=False`` forces the reference path. The switch is per thread (as ``torch.no_grad``), so
    a model trained in one thread is not switched by inference in another."""
    previous = getattr(_STATE, "fast", False)
    _STATE.fast = enabled
    try:
        yield
    finally:
        _STATE.fast = previous


def fast_path(x: torch.Tensor) -> bool:
    """True when the inference fast path applies to ``x``: inside :func:`fast_inference`, autograd off, a
    contiguous NCHW float32 CPU tensor, no autocast."""
    return (getattr(_STATE, "fast", False) and not torch.is_grad_enabled() and x.device.type == "cpu"
            and x.dtype == torch.float32 and x.dim() == 4 and x.is_contiguous()
            and not torch.is_autocast_enabled("cpu"))


class LayerNorm2d(nn.Module):
    """Per-pixel layer norm over the channel axis.

    ``y = (x - mean_c(x)) / sqrt(var_c(x) + eps) * w + b`` (``"WithBias"``, Restormer's default for
    denoising/deraining and TG-ECNet's choice), or ``y = x / sqrt(var_c(x) + eps) * w`` (``"BiasFree"``); the
    variance is the biased one and ``eps = 1e-5`` (Restormer ``WithBias_LayerNorm``).
    """

    def __init__(self, dim: int, kind: str = "WithBias", eps: float = 1e-5) -> None:
        super().__init__()
        if kind not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm kind must be 'WithBias' or 'BiasFree', got {kind!r}")
        self.with_bias = kind == "WithBias"
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if self.with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fast_path(x):
            return self._forward_nchw(x)
        if self.with_bias:  # one fused kernel over the channel axis of the (B, H, W, C) view
            y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
            y = y.permute(0, 3, 1, 2)  # channels-last layout: no copy when the input was channels-last
            # keep the input's memory format (NCHW in, NCHW out: no mixed formats downstream)
            return y if _channels_last(x) else y.contiguous()
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return x * torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1)

    def _forward_nchw(self, x: torch.Tensor) -> torch.Tensor:
        """Same formula reduced over dim 1 of the NCHW tensor (no permute/contiguous copies), in place where
        possible: ``d = x - mean``, ``y = d * rsqrt(mean(d^2) + eps)``, then ``y * w + b``."""
        w = self.weight.view(1, -1, 1, 1)
        if not self.with_bias:
            var = x.var(dim=1, keepdim=True, unbiased=False)
            return x * (var + self.eps).rsqrt_() * w
        d = x - x.mean(dim=1, keepdim=True)
        var = (d * d).mean(dim=1, keepdim=True)
        d *= (var + self.eps).rsqrt_()
        return torch.addcmul(self.bias.view(1, -1, 1, 1), d, w)


def to_channels_last(module: nn.Module) -> nn.Module:
    """Store every 4-D parameter (convolution weights) of ``module`` in channels-last memory format, in place.

    ``module.to(memory_format=torch.channels_last)`` refuses TG-ECNet (its prompt components are 5-D). With
    channels-last weights, convolutions produce channels-last outputs and :class:`LayerNorm2d` keeps them so;
    depthwise 3x3 convolutions, most of the CPU time of the small configurations, run about twice as fast.
    Values equal the NCHW ones up to float rounding (different kernels)."""
    for p in module.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return module


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous()


def _conv1x1(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution on the fast path: oneDNN's kernel, which PyTorch does not pick for 1x1 convolutions on
    NCHW inputs (its own ``slow_conv2d`` is about 1.5x slower at these widths); ``conv(x)`` without oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return conv(x)
    return torch.ops.aten.mkldnn_convolution(x, conv.weight, conv.bias, [0, 0], [1, 1], [1, 1], 1)


class MDTA(nn.Module):
    """Multi-Dconv head Transposed Attention (Restormer section 3.1).

    ``Q, K, V = DWConv3x3(Conv1x1(x))``; per head, attention across *channels*:
    ``A = softmax(norm(Q) norm(K)^T * tau)`` with L2-normalised rows over the ``H*W`` pixels and a learnable
    temperature ``tau`` per head; ``out = Conv1x1(A V)``. Cost is linear in the number of pixels.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"MDTA: {dim} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        shape = (b, self.num_heads, c // self.num_heads, h * w)
        q = F.normalize(q.reshape(shape), dim=-1)
        k = F.normalize(k.reshape(shape), dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v.reshape(shape)
        return self.project_out(out.reshape(b, c, h, w))

    def forward_residual(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual + forward(x)``; on the inference fast path in one pass over the values:

        ``S = Q K^T`` per head (``(c, c)``, ``c = C / heads``) and the row norms ``|q_i|, |k_j|`` give the
        attention ``A = softmax(S_ij / (max(|q_i|, eps) max(|k_j|, eps)) * tau)`` (equal to the normalised
        product, ``eps = 1e-12`` as ``F.normalize``); ``out = W_o blockdiag(A) V + residual`` as one batched
        product (``W_o`` the 1x1 ``project_out``)."""
        if not (fast_path(x) and fast_path(residual)):
            return residual + self(x)
        b, c, h, w = x.shape
        n, heads = h * w, self.num_heads
        d = c // heads
        qkv = self.qkv_dwconv(_conv1x1(self.qkv, x)).view(b, 3 * c, n)
        q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]
        nq = torch.linalg.vector_norm(q, dim=-1).clamp_min_(1e-12)
        nk = torch.linalg.vector_norm(k, dim=-1).clamp_min_(1e-12)
        if heads == 1:
            s = torch.bmm(q, k.transpose(1, 2)).view(b, 1, c, c)
        else:  # per head: (b * heads) products of (d, n) x (n, d)
            s = torch.matmul(q.view(b, heads, d, n), k.view(b, heads, d, n).transpose(-2, -1))
        s = s / (nq.view(b, heads, d, 1) * nk.view(b, heads, 1, d))
        attn = (s * self.temperature).softmax(dim=-1)  # (b, heads, d, d)
        w_o = self.project_out.weight.view(c, heads, d)
        m = torch.einsum("ohi,bhij->bohj", w_o, attn).reshape(b, c, c)  # W_o blockdiag(A)
        out = torch.baddbmm(residual.view(b, c, n), m, v)
        if self.project_out.bias is not None:
            out += self.project_out.bias.view(1, c, 1)
        return out.view(b, c, h, w)


class GDFN(nn.Module):
    """Gated-Dconv Feed-forward Network (Restormer section 3.2).

    ``h = int(dim * factor)``; ``[x1, x2] = DWConv3x3(Conv1x1(x))`` (``2h`` channels);
    ``out = Conv1x1(GELU(x1) * x2)``.
    """

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)

    def forward_residual(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual + forward(x)``; on the inference fast path ``g = GELU(x1) * x2`` in place and
        ``out = W_o g + residual`` as one batched product."""
        if not (fast_path(x) and fast_path(residual)):
            return residual + self(x)
        b, c, h, w = x.shape
        t = self.dwconv(_conv1x1(self.project_in, x))
        hidden = t.shape[1] // 2
        g = F.gelu(t[:, :hidden])
        g *= t[:, hidden:]
        w_o = self.project_out.weight.view(c, hidden).expand(b, c, hidden)
        out = torch.baddbmm(residual.view(b, c, h * w), w_o, g.view(b, hidden, h * w))
        if self.project_out.bias is not None:
            out += self.project_out.bias.view(1, c, 1)
        return out.view(b, c, h, w)


class TransformerBlock(nn.Module):
    """Restormer block: ``x = x + MDTA(LN(x)); x = x + GDFN(LN(x))``."""

    def __init__(
        self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool = False, norm: str = "WithBias"
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, norm)
        self.attn = MDTA(dim, num_heads, bias)
        self.norm2 = LayerNorm2d(dim, norm)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fast_path(x):
            x = self.attn.forward_residual(self.norm1(x), x)
            return self.ffn.forward_residual(self.norm2(x), x)
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_stage(
    n: int, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, norm: str
) -> nn.Sequential:
    """``n`` :class:`TransformerBlock` in sequence."""
    return nn.Sequential(*[TransformerBlock(dim, num_heads, ffn_expansion_factor, bias, norm) for _ in range(n)])


class OverlapPatchEmbed(nn.Module):
    """3x3 convolution from image channels to ``embed_dim`` features (stride 1, no downsampling)."""

    def __init__(self, in_channels: int, embed_dim: int, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """``Conv3x3(C -> C/2)`` then ``PixelUnshuffle(2)``: ``(C, H, W) -> (2C, H/2, W/2)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """``Conv3x3(C -> 2C)`` then ``PixelShuffle(2)``: ``(C, H, W) -> (C/2, 2H, 2W)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
