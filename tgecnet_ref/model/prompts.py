"""Prompts: PromptIR's decoder prompt generator and TG-ECNet's task prompt (CondNet + learned dictionary)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PromptGenBlock(nn.Module):
    """PromptIR prompt generation (Potlapalli et al., NeurIPS 2023, Eq. 1-2).

    ``L`` learnable prompt components ``P_l`` of shape ``(D, S, S)``; weights ``w = softmax(Linear(GAP(x)))``
    over ``l``; ``prompt = Conv3x3(resize_bilinear(sum_l w_l P_l, (H, W)))``. Output ``(B, D, H, W)``.
    """

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, lin_dim: int) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # (B, L)
        prompt = torch.einsum("bl,ldhw->bdhw", weights, self.prompt_param[0])
        prompt = F.interpolate(prompt, size=(h, w), mode="bilinear", align_corners=False)
        return self.conv3x3(prompt)


class TaskPrompt(nn.Module):
    """TG-ECNet task prompt: one ``atom_dim`` vector per image, from the image (or a feature map).

    ``z = GAP(CondNet(x))`` where CondNet = Conv(k3,s3) - LReLU - Conv(k3,s3) - LReLU - 1x1 - LReLU - 1x1 -
    LReLU - 1x1 (LReLU slope 0.1, no padding); ``a = softmax(Linear(z))`` over ``atom_num`` atoms;
    ``prompt = GELU(a @ D)`` with a learnable dictionary ``D`` of shape ``(atom_num, atom_dim)``.
    The input must be at least 9 pixels high and wide (two stride-3 3x3 convolutions).
    """

    def __init__(
        self, in_dim: int, atom_num: int = 32, atom_dim: int = 256, hidden_dim: int = 64, cond_dim: int = 32
    ) -> None:
        super().__init__()
        self.cond_net = nn.Sequential(
            nn.Conv2d(in_dim, hidden_dim, 3, 3),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(hidden_dim, hidden_dim, 3, 3),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(hidden_dim, hidden_dim, 1),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(hidden_dim, hidden_dim, 1),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(hidden_dim, cond_dim, 1),
        )
        self.last_out = nn.Linear(cond_dim, atom_num)
        self.dictionary = nn.Parameter(torch.randn(atom_num, atom_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 9 or x.shape[-2] < 9:
            raise ValueError(f"TaskPrompt needs inputs of at least 9x9 pixels, got {tuple(x.shape[-2:])}")
        z = self.cond_net(x).mean(dim=(-2, -1))
        atoms = F.softmax(self.last_out(z), dim=-1)
        return F.gelu(atoms @ self.dictionary)
