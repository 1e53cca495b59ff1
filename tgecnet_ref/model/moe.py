"""Per-pixel mixture of experts with noisy top-k gating, as in TG-ECNet's ``TaskMoE``.

Gating follows Shazeer et al., "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts
Layer" (ICLR 2017), Eq. 3-5 and appendix A; TG-ECNet routes every pixel separately, with the image's task prompt
concatenated to the pixel's feature as the gating input, and combines the experts in log space (as Shazeer's
reference ``SparseDispatcher.combine``): ``y = log(sum_i g_i * exp(E_i(x)))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import fast_path


def cv_squared(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Squared coefficient of variation ``Var(x) / (mean(x)^2 + eps)`` (unbiased variance); 0 for one element.

    Shazeer et al. 2017, Eq. 6-7 (importance and load losses). It is 0 exactly when all entries are equal.
    """
    x = x.float()
    if x.numel() <= 1:
        return x.new_zeros(())
    return x.var() / (x.mean() ** 2 + eps)


@dataclass
class Routing:
    """Top-k routing of N tokens among E experts.

    ``indices`` (N, k) expert index per slot; ``gates`` (N, k) gate values (softmax over the k kept logits,
    so each row sums to 1); ``log_gates`` (N, k) their logs (computed stably); ``importance`` (E,) the sum of
    gates per expert; ``load`` (E,) the (smooth, while training with noise) number of tokens per expert.
    """

    indices: torch.Tensor
    gates: torch.Tensor
    log_gates: torch.Tensor
    importance: torch.Tensor
    load: torch.Tensor

    def dense(self, num_experts: int) -> torch.Tensor:
        """Gates as an (N, E) matrix with zeros for the experts not chosen."""
        out = self.gates.new_zeros(self.gates.shape[0], num_experts)
        return out.scatter(1, self.indices, self.gates)

    def balance_loss(self) -> torch.Tensor:
        """``cv^2(importance) + cv^2(load)`` (Shazeer et al. 2017, Eq. 6-7, 11; TG-ECNet ``loss_Weight + loss_Sum``)."""
        return cv_squared(self.importance) + cv_squared(self.load)


class NoisyTopKGate(nn.Module):
    """Noisy top-k gating.

    ``H(x) = x W_g + n * (softplus(x W_n) + 1e-2)`` with ``n ~ N(0, 1)`` while training (``noisy``), else
    ``H(x) = x W_g``; keep the k largest logits, ``g = softmax`` over them. The load while training with noise is
    ``sum_x P(x, i)``, the probability that expert i stays in the top k when only its own noise is redrawn
    (Shazeer et al. 2017, appendix A, Eq. 8-10); otherwise the count of tokens routed to each expert.
    ``W_g ~ N(0, 1)`` and ``W_n = 0`` at initialisation (as TG-ECNet). Gating runs in float32 whatever the
    autocast setting, so that ties and the top-k choice do not depend on reduced precision.
    """

    def __init__(self, in_dim: int, num_experts: int, k: int, noisy: bool = True, noise_eps: float = 1e-2):
        super().__init__()
        if not 1 <= k <= num_experts:
            raise ValueError(f"top-k must be in [1, {num_experts}] for {num_experts} experts, got {k}")
        self.num_experts, self.k, self.noisy, self.noise_eps = num_experts, k, noisy, noise_eps
        self.w_gate = nn.Parameter(torch.randn(in_dim, num_experts))
        self.w_noise = nn.Parameter(torch.zeros(in_dim, num_experts))

    def forward(self, x: torch.Tensor) -> Routing:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            clean = x @ self.w_gate.float()
            use_noise = self.noisy and self.training
            if use_noise:
                noise_std = F.softplus(x @ self.w_noise.float()) + self.noise_eps
                logits = clean + torch.randn_like(clean) * noise_std
            else:
                logits, noise_std = clean, None
            return self.route(clean, logits, noise_std)

    def route(self, clean: torch.Tensor, logits: torch.Tensor, noise_std: torch.Tensor | None = None) -> Routing:
        """Top-k routing from float32 logits ``(N, E)`` (``logits`` noisy and ``noise_std`` given while training
        with noise, else ``logits is clean``)."""
        m = min(self.k + 1, self.num_experts)
        top_logits, top_idx = logits.topk(m, dim=1)
        k_logits, k_idx = top_logits[:, : self.k], top_idx[:, : self.k]
        log_gates = F.log_softmax(k_logits, dim=1)
        gates = log_gates.exp()
        importance = gates.new_zeros(self.num_experts).index_add(0, k_idx.reshape(-1), gates.reshape(-1))
        if noise_std is not None and self.k < self.num_experts:
            load = self._prob_in_top_k(clean, logits, noise_std, top_logits).sum(0)
        else:
            flat = k_idx.reshape(-1)  # counts by index_add: a static output shape (torch.compile)
            load = gates.new_zeros(self.num_experts).index_add(0, flat, torch.ones_like(flat, dtype=gates.dtype))
        return Routing(k_idx, gates, log_gates, importance, load)

    def _prob_in_top_k(
        self, clean: torch.Tensor, noisy: torch.Tensor, noise_std: torch.Tensor, top_noisy: torch.Tensor
    ) -> torch.Tensor:
        """``P(x, i) = Phi((clean_i - kth_excluding(H(x), k, i)) / std_i)`` (Shazeer et al. 2017, Eq. 9)."""
        threshold_if_in = top_noisy[:, self.k : self.k + 1]  # (k+1)-th largest: the bar when i is in the top k
        threshold_if_out = top_noisy[:, self.k - 1 : self.k]  # k-th largest: the bar when i is out
        is_in = noisy > threshold_if_in
        phi = lambda z: 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))  # noqa: E731 - standard normal CDF
        prob_if_in = phi((clean - threshold_if_in) / noise_std)
        prob_if_out = phi((clean - threshold_if_out) / noise_std)
        return torch.where(is_in, prob_if_in, prob_if_out)


class Expert(nn.Module):
    """One expert: ``Linear(C, h) - GELU - Linear(h, C)`` with ``h = int(C * ratio)`` (TG-ECNet ``Mlp``)."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class PixelMoE(nn.Module):
    """Per-pixel mixture of experts conditioned on a per-image prompt (TG-ECNet ``TaskMoE``).

    For every pixel feature ``x`` (C channels) of image b with prompt ``p_b`` (``atom_dim``):
    ``u = [x, Linear(p_b)]`` is the gating input (2C); ``y = log(sum_{i in topk(u)} g_i(u) exp(E_i(x)))``,
    computed as a log-sum-exp over the k chosen experts with ``log g`` from a log-softmax (exact and free of the
    public code's ``eps`` patch for empty sums); output ``y + x``. Also returns the balance loss
    ``cv^2(importance) + cv^2(load)`` over all pixels of the batch.

    ``dispatch="sparse"`` runs each expert only on its pixels (the default, k/E of the dense cost);
    ``dispatch="dense"`` runs every expert on every pixel and gathers the chosen ones (no data-dependent shapes,
    friendlier to ``torch.compile``); both give the same result.
    """

    def __init__(
        self,
        dim: int,
        atom_dim: int,
        num_experts: int = 11,
        top_k: int = 6,
        ratio: float = 2.66,
        noisy: bool = True,
        dispatch: str = "sparse",
    ) -> None:
        super().__init__()
        if dispatch not in ("sparse", "dense"):
            raise ValueError(f"MoE dispatch must be 'sparse' or 'dense', got {dispatch!r}")
        self.dispatch = dispatch
        self.num_experts, self.top_k = num_experts, top_k
        self.fc = nn.Linear(atom_dim, dim)
        self.gate = NoisyTopKGate(2 * dim, num_experts, top_k, noisy=noisy)
        self.experts = nn.ModuleList([Expert(dim, ratio) for _ in range(num_experts)])

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if fast_path(x) and not (self.gate.noisy and self.gate.training):
            return self._forward_fast(x, prompt)
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
        p = self.fc(prompt).to(tokens.dtype)  # (B, C)
        p_tok = p[:, None, :].expand(b, h * w, c).reshape(b * h * w, c)
        routing = self.gate(torch.cat([tokens, p_tok], dim=1))
        chosen = self._expert_outputs(tokens, routing.indices)  # (N, k, C)
        y = torch.logsumexp(chosen.float() + routing.log_gates[..., None], dim=1).to(x.dtype)
        y = y.reshape(b, h, w, c).permute(0, 3, 1, 2)
        return y + x, routing.balance_loss()

    def _forward_fast(self, x: torch.Tensor, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference fast path (no gating noise), the same function as :meth:`forward`:

        * the gate's logits ``[x, p] W_g = x W_top + p W_bottom`` without the (N, 2C) concatenation (the prompt
          half is one row per image);
        * each expert runs on its tokens only and writes its outputs, with the log gate added, into a slot-major
          ``(k, N, C)`` buffer (no concatenation), so that the log-sum-exp over the k chosen experts is a chain
          of ``logaddexp`` over contiguous ``(N, C)`` slices (``log(e^a + e^b)``, stable) instead of reductions
          over a length-k axis;
        * an NCHW output (``x + y``; the reference ``y + x`` is channels-last)."""
        b, c, h, w = x.shape
        n = h * w
        tokens = x.permute(0, 2, 3, 1).reshape(b * n, c)
        p = self.fc(prompt)  # (B, C)
        w_gate = self.gate.w_gate
        rows = (p @ w_gate[c:])[:, None, :]  # (B, 1, E): the prompt's share of every pixel's logits
        logits = torch.baddbmm(rows, tokens.view(b, n, c), w_gate[:c].expand(b, c, self.num_experts))
        logits = logits.view(b * n, self.num_experts)
        routing = self.gate.route(logits, logits)
        k = self.top_k
        flat = routing.indices.reshape(-1)  # slot s = token * k + j
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()
        tok = order // k
        dest = (order - tok * k) * (b * n) + tok  # slot-major position j * N + token
        log_g = routing.log_gates.t().reshape(-1, 1)  # (k * N, 1), slot-major
        slots = tokens.new_empty(k * b * n, c)
        start = 0
        for expert, count in zip(self.experts, counts):
            if count:
                where = dest[start:start + count]
                out = expert(tokens[tok[start:start + count]])
                out += log_g[where]
                slots.index_copy_(0, where, out)
            start += count
        slots = slots.view(k, b * n, c)
        y = slots[0]
        for j in range(1, k):
            y = torch.logaddexp(y, slots[j])
        return x + y.view(b, h, w, c).permute(0, 3, 1, 2), routing.balance_loss()

    def _expert_outputs(self, tokens: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        n, k = indices.shape
        c = tokens.shape[1]
        if self.dispatch == "dense":
            outs = torch.stack([e(tokens) for e in self.experts], dim=1)  # (N, E, C)
            return outs.gather(1, indices[..., None].expand(n, k, c))
        flat = indices.reshape(-1)  # slot s = token * k + j
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()
        inputs = tokens[order // k].split(counts, dim=0)
        # every expert is called, even on zero rows, so that all parameters join the graph (DDP needs that)
        outs = torch.cat([e(inp) for e, inp in zip(self.experts, inputs)], dim=0)
        slots = outs.new_empty(n * k, outs.shape[1]).index_copy(0, order, outs)
        return slots.reshape(n, k, -1)
