"""Training losses of TG-ECNet (stage 1 restoration, stage 2 fusion).

Gradient operator: ``S(x) = |K_x * x| + |K_y * x|`` with the 3x3 Sobel kernels, zero padding, per channel
(as SeAFusion / MoE-Fusion ``Sobelxy``). Fusion gradient loss (Tang et al., SeAFusion 2022, Eq. 6; MoE-Fusion
``NewGradLoss``): ``L_grad = || S(F) - max(S(V), S(I)) ||_1`` (mean absolute error) — the fused image's
gradient against the element-wise maximum of the two *clean sources'* gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import StageConfig

_KX = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_KY = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


def sobel(x: torch.Tensor) -> torch.Tensor:
    """``|K_x * x| + |K_y * x|`` per channel of a ``(B, C, H, W)`` tensor, zero padding, same size."""
    c = x.shape[1]
    k = torch.tensor((_KX, _KY), dtype=x.dtype, device=x.device)[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    g = F.conv2d(x, k, padding=1, groups=c)
    return g[:, 0::2].abs() + g[:, 1::2].abs()


def gradient_loss(fused: torch.Tensor, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """``mean |S(fused) - max(S(vis), S(ir))|`` — the *fused* image against the sources' joint gradient.

    The public TG-ECNet code calls its fusion loss with the arguments in another order than the loss expects,
    so that the fused image ends up among the targets; here each argument has one named role.
    """
    return F.l1_loss(sobel(fused), torch.maximum(sobel(vis), sobel(ir)))


def restoration_loss(
    restored: torch.Tensor, clean: torch.Tensor, balance: torch.Tensor, cfg: StageConfig
) -> dict[str, torch.Tensor]:
    """Stage 1: ``w_l1 * L1(R, C) + w_grad * L1(S(R), S(C)) + w_balance * B`` (paper: 1, 10, 0.1).

    Returns the total under ``"loss"`` and every term (unweighted) under its own key.
    """
    l1 = F.l1_loss(restored, clean)
    grad = F.l1_loss(sobel(restored), sobel(clean))
    balance = balance.float()
    total = cfg.w_l1 * l1 + cfg.w_grad * grad + cfg.w_balance * balance
    return {"loss": total, "l1": l1, "grad": grad, "balance": balance}


def fusion_loss(
    fused: torch.Tensor, vis: torch.Tensor, ir: torch.Tensor, balance: torch.Tensor, cfg: StageConfig
) -> dict[str, torch.Tensor]:
    """Stage 2: ``w_vis L1(F,V) + w_ir L1(F,I) + w_max L1(F, max(V,I)) + w_grad L_grad + w_balance B``.

    ``V`` (clean VIS luminance) and ``I`` (clean IR) are the clean sources; paper weights 1, 1, 1, 5, 0.1.
    """
    l1_vis = F.l1_loss(fused, vis)
    l1_ir = F.l1_loss(fused, ir)
    l1_max = F.l1_loss(fused, torch.maximum(vis, ir))
    grad = gradient_loss(fused, vis, ir)
    balance = balance.float()
    total = (cfg.w_vis * l1_vis + cfg.w_ir * l1_ir + cfg.w_max * l1_max + cfg.w_grad * grad
             + cfg.w_balance * balance)
    return {"loss": total, "l1_vis": l1_vis, "l1_ir": l1_ir, "l1_max": l1_max, "grad": grad, "balance": balance}
