"""TG-ECNet (ICML 2025): task-guided, degradation-aware IR/VIS fusion on a PromptIR/Restormer U-net.

Stage 1 (:class:`RestorationNet`) restores one degraded single-channel image (IR, or the VIS luminance Y):
a 4-level Restormer U-net with PromptIR decoder prompts and a global residual, where a per-pixel mixture of
experts guided by an image-level task prompt precedes encoder levels 1-3 ("degradation-aware gating").

Stage 2 (:class:`FusionHead`) fuses the two restorations: the decoder-level-1 features of the VIS and IR passes
(same weights) are mixed as ``F = alpha * F_V + beta * F_I``; a fusion task prompt and a fusion mixture of
experts gate ``F`` ("fusion-aware gating"); then a decoder level, refinement and an output convolution give the
fused image, to which the two restored images are added with learnable weights ``theta, gamma``.

Shapes: images ``(B, 1, H, W)`` with ``H, W`` multiples of 8 and at least 16 (three 2x downsamplings; the task
prompt needs 9x9 pixels). See ``docs/tgecnet.md`` for the diagram and the deviations from the public code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import ModelConfig
from .layers import Downsample, OverlapPatchEmbed, TransformerBlock, Upsample, transformer_stage
from .moe import PixelMoE
from .prompts import PromptGenBlock, TaskPrompt

MULTIPLE = 8
MIN_SIZE = 16


class RestoreOutput(NamedTuple):
    """Stage-1 output: restored image, decoder-level-1 features (2*dim channels), MoE balance loss."""

    image: torch.Tensor
    features: torch.Tensor
    balance: torch.Tensor


class FuseOutput(NamedTuple):
    """Stage-2 output: fused image, the restored VIS-Y and IR images, and the fusion MoE balance loss."""

    fused: torch.Tensor
    vis_restored: torch.Tensor
    ir_restored: torch.Tensor
    balance: torch.Tensor


def check_size(x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, C, H, W)`` with ``H, W`` multiples of 8 and at least 16."""
    if x.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % MULTIPLE or w % MULTIPLE or h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(
            f"TG-ECNet needs H and W multiples of {MULTIPLE} and at least {MIN_SIZE}, got {h}x{w} "
            "(pad with tgecnet_ref.infer.pad_to_multiple)"
        )


class RestorationNet(nn.Module):
    """Stage 1: degradation-aware restoration U-net (one image channel in and out, global residual)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d, ffn, bias, ln, hd = cfg.dim, cfg.ffn_expansion_factor, cfg.bias, cfg.layernorm, cfg.heads
        c1, c2, c3, c4 = d, 2 * d, 4 * d, 8 * d
        p1, p2, p3 = cfg.prompt_dims
        s1, s2, s3 = cfg.prompt_sizes

        def stage(n: int, dim: int, heads: int) -> nn.Sequential:
            return transformer_stage(n, dim, heads, ffn, bias, ln)

        self.task_prompt = TaskPrompt(cfg.in_channels, cfg.atom_num, cfg.atom_dim, cfg.condnet_hidden,
                                      cfg.condnet_out)
        self.degrad_moe = nn.ModuleDict({
            str(level): PixelMoE(d * 2 ** (level - 1), cfg.atom_dim, cfg.moe_experts, cfg.moe_top_k, ffn,
                                 noisy=cfg.moe_noisy, dispatch=cfg.moe_dispatch)
            for level in sorted(set(cfg.moe_levels))
        })
        self.patch_embed = OverlapPatchEmbed(cfg.in_channels, d)
        self.encoder_level1 = stage(cfg.num_blocks[0], c1, hd[0])
        self.down1_2 = Downsample(c1)
        self.encoder_level2 = stage(cfg.num_blocks[1], c2, hd[1])
        self.down2_3 = Downsample(c2)
        self.encoder_level3 = stage(cfg.num_blocks[2], c3, hd[2])
        self.down3_4 = Downsample(c3)
        self.latent = stage(cfg.num_blocks[3], c4, hd[3])

        self.prompt3 = PromptGenBlock(p3, cfg.prompt_len, s3, lin_dim=c4)
        self.noise_level3 = TransformerBlock(c4 + p3, hd[2], ffn, bias, ln)
        self.reduce_noise_level3 = nn.Conv2d(c4 + p3, c3, kernel_size=1, bias=bias)
        self.up4_3 = Upsample(c3)
        self.reduce_chan_level3 = nn.Conv2d(c2 + c3, c3, kernel_size=1, bias=bias)
        self.decoder_level3 = stage(cfg.num_blocks[2], c3, hd[2])

        self.prompt2 = PromptGenBlock(p2, cfg.prompt_len, s2, lin_dim=c3)
        self.noise_level2 = TransformerBlock(c3 + p2, hd[2], ffn, bias, ln)
        self.reduce_noise_level2 = nn.Conv2d(c3 + p2, c3, kernel_size=1, bias=bias)
        self.up3_2 = Upsample(c3)
        self.reduce_chan_level2 = nn.Conv2d(c2 + c2, c2, kernel_size=1, bias=bias)
        self.decoder_level2 = stage(cfg.num_blocks[1], c2, hd[1])

        self.prompt1 = PromptGenBlock(p1, cfg.prompt_len, s1, lin_dim=c2)
        self.noise_level1 = TransformerBlock(c2 + p1, hd[2], ffn, bias, ln)
        self.reduce_noise_level1 = nn.Conv2d(c2 + p1, c2, kernel_size=1, bias=bias)
        self.up2_1 = Upsample(c2)
        self.decoder_level1 = stage(cfg.num_blocks[0], c2, hd[0])

        self.refinement = stage(cfg.num_refinement_blocks, c2, hd[0])
        self.output = nn.Conv2d(c2, cfg.out_channels, kernel_size=3, padding=1, bias=bias)

    def _moe(self, level: int, x: torch.Tensor, prompt: torch.Tensor, losses: list[torch.Tensor],
             skip: tuple[int, ...] = ()) -> torch.Tensor:
        key = str(level)
        if key not in self.degrad_moe or level in skip:
            return x
        y, loss = self.degrad_moe[key](x, prompt)
        losses.append(loss)
        return y

    def features(self, x: torch.Tensor, skip_moe: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder-level-1 features ``(B, 2*dim, H, W)`` and the summed balance loss of the MoE blocks.

        ``skip_moe``: encoder levels whose MoE is bypassed (``compat="public"`` stage 2 passes ``(1,)``)."""
        check_size(x)
        losses: list[torch.Tensor] = []
        prompt = self.task_prompt(x)
        enc1 = self.encoder_level1(self._moe(1, self.patch_embed(x), prompt, losses, skip_moe))
        enc2 = self.encoder_level2(self._moe(2, self.down1_2(enc1), prompt, losses, skip_moe))
        enc3 = self.encoder_level3(self._moe(3, self.down2_3(enc2), prompt, losses, skip_moe))
        lat = self.latent(self.down3_4(enc3))

        lat = self.reduce_noise_level3(self.noise_level3(torch.cat([lat, self.prompt3(lat)], 1)))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), enc3], 1)))
        dec3 = self.reduce_noise_level2(self.noise_level2(torch.cat([dec3, self.prompt2(dec3)], 1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec2 = self.reduce_noise_level1(self.noise_level1(torch.cat([dec2, self.prompt1(dec2)], 1)))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1))
        balance = torch.stack(losses).sum() if losses else x.new_zeros((), dtype=torch.float32)
        return dec1, balance

    def head(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Refinement, output convolution and global residual: ``R = Conv(Refine(f)) + x``."""
        return self.output(self.refinement(features)) + x

    def forward(self, x: torch.Tensor) -> RestoreOutput:
        feats, balance = self.features(x)
        return RestoreOutput(self.head(feats, x), feats, balance)


class FusionHead(nn.Module):
    """Stage 2: fusion-aware gating and reconstruction from the two restoration passes."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c2, ffn, bias, ln, h0 = 2 * cfg.dim, cfg.ffn_expansion_factor, cfg.bias, cfg.layernorm, cfg.heads[0]
        self.alpha = nn.Parameter(torch.full((c2, 1, 1), float(cfg.fusion_weight_init)))
        self.beta = nn.Parameter(torch.full((c2, 1, 1), float(cfg.fusion_weight_init)))
        self.theta = nn.Parameter(torch.full((cfg.out_channels, 1, 1), float(cfg.restored_weight_init)))
        self.gamma = nn.Parameter(torch.full((cfg.out_channels, 1, 1), float(cfg.restored_weight_init)))
        self.fusion_prompt = TaskPrompt(c2, cfg.atom_num, cfg.atom_dim, cfg.condnet_hidden, cfg.condnet_out)
        self.fusion_moe = PixelMoE(c2, cfg.atom_dim, cfg.fusion_experts, cfg.fusion_top_k, ffn,
                                   noisy=cfg.moe_noisy, dispatch=cfg.moe_dispatch)
        self.decoder = transformer_stage(cfg.fusion_blocks, c2, h0, ffn, bias, ln)
        self.refinement = transformer_stage(cfg.fusion_refinement_blocks, c2, h0, ffn, bias, ln)
        self.output = nn.Conv2d(c2, cfg.out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(
        self, f_vis: torch.Tensor, f_ir: torch.Tensor, r_vis: torch.Tensor, r_ir: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``F = a*F_V + b*F_I``; ``out = Conv(Refine(Dec(MoE(F, prompt(F))))) + theta*R_V + gamma*R_I``."""
        f = self.alpha * f_vis + self.beta * f_ir
        f, balance = self.fusion_moe(f, self.fusion_prompt(f))
        out = self.output(self.refinement(self.decoder(f)))
        return out + self.theta * r_vis + self.gamma * r_ir, balance


class TGECNet(nn.Module):
    """The full model: a shared :class:`RestorationNet` and a :class:`FusionHead`."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ModelConfig()
        self.restorer = RestorationNet(self.cfg)
        self.fusion = FusionHead(self.cfg)

    # -- stage-2 freezing ----------------------------------------------------------------------------------------
    def freeze_restorer(self) -> None:
        """Freeze stage 1 (no gradients, eval mode: no gating noise) so that only the fusion path trains."""
        for p in self.restorer.parameters():
            p.requires_grad_(False)
        self.restorer.eval()

    @property
    def restorer_frozen(self) -> bool:
        """True when no restorer parameter requires a gradient."""
        return not any(p.requires_grad for p in self.restorer.parameters())

    def train(self, mode: bool = True) -> TGECNet:
        super().train(mode)
        if self.restorer_frozen:
            self.restorer.eval()
        return self

    # -- forward passes ------------------------------------------------------------------------------------------
    def restore(self, x: torch.Tensor) -> RestoreOutput:
        """Stage-1 restoration of one modality."""
        return self.restorer(x)

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> FuseOutput:
        """Stage-2 fusion of a degraded VIS luminance and a degraded IR image (both ``(B, 1, H, W)``).

        Both modalities go through the restorer as one batch of ``2B`` (same weights, as the public code's two
        passes); under a frozen restorer this runs without building an autograd graph.

        With ``compat="public"`` the restorer's level-1 MoE is bypassed in this pass, as in the authors'
        stage-2 code (``TG_ECNet.forward`` of ``stage2/``: the level-1 MoE output is computed and never used,
        ``encoder_level1`` reads the patch embedding); their casts to float16 are not reproduced (weights
        and activations stay in the caller's precision). Stage 1 (:meth:`restore`) is the same in both modes.
        """
        if vis_y.shape != ir.shape:
            raise ValueError(f"VIS and IR shapes differ: {tuple(vis_y.shape)} vs {tuple(ir.shape)}")
        b = vis_y.shape[0]
        skip = (1,) if self.cfg.compat == "public" else ()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.restorer_frozen):
            both = torch.cat([vis_y, ir], dim=0)
            feats, _ = self.restorer.features(both, skip_moe=skip)
            restored = self.restorer.head(feats, both)
        fused, balance = self.fusion(feats[:b], feats[b:], restored[:b], restored[b:])
        return FuseOutput(fused, restored[:b], restored[b:], balance)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (only those requiring gradients if ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameter_summary(model: TGECNet) -> dict[str, int]:
    """``{"stage1": restorer, "fusion": fusion head, "total": both, "trainable": requiring gradients}``."""
    s1, fu = count_parameters(model.restorer), count_parameters(model.fusion)
    return {"stage1": s1, "fusion": fu, "total": s1 + fu, "trainable": count_parameters(model, True)}
