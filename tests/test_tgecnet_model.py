"""TG-ECNet model: shapes, parameter counts from the architecture, MoE gating, residuals, stage-2 freezing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tgecnet_ref.config import ModelConfig, available_configs, config_from_dict, load_config
from tgecnet_ref.model import TGECNet, parameter_summary
from tgecnet_ref.model.moe import NoisyTopKGate, PixelMoE, cv_squared

PKG = Path(__file__).resolve().parents[1] / "tgecnet_ref"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny_cfg() -> ModelConfig:
    return load_config("tiny").model


@pytest.fixture()
def tiny(tiny_cfg: ModelConfig) -> TGECNet:
    torch.manual_seed(0)
    return TGECNet(tiny_cfg)


# ---------------------------------------------------------------------------------------------------------------
# parameter arithmetic, written from the architecture (independent of the module code)
def _conv(cin: int, cout: int, k: int, bias: bool = False, groups: int = 1) -> int:
    return cin // groups * cout * k * k + (cout if bias else 0)


def _block(c: int, heads: int, f: float) -> int:
    h = int(c * f)
    norms = 2 * (2 * c)
    attn = heads + _conv(c, 3 * c, 1) + _conv(3 * c, 3 * c, 3, groups=3 * c) + _conv(c, c, 1)
    ffn = _conv(c, 2 * h, 1) + _conv(2 * h, 2 * h, 3, groups=2 * h) + _conv(h, c, 1)
    return norms + attn + ffn


def _task_prompt(cin: int, m: ModelConfig) -> int:
    hid, out = m.condnet_hidden, m.condnet_out
    cond = (_conv(cin, hid, 3, True) + _conv(hid, hid, 3, True) + 2 * _conv(hid, hid, 1, True)
            + _conv(hid, out, 1, True))
    return cond + out * m.atom_num + m.atom_num + m.atom_num * m.atom_dim


def _moe(c: int, experts: int, m: ModelConfig) -> int:
    h = int(c * m.ffn_expansion_factor)
    return m.atom_dim * c + c + experts * (c * h + h + h * c + c) + 2 * (2 * c * experts)


def _prompt(d: int, size: int, lin: int, m: ModelConfig) -> int:
    return m.prompt_len * d * size * size + lin * m.prompt_len + m.prompt_len + d * d * 9


def arithmetic_counts(m: ModelConfig) -> tuple[int, int]:
    d, f, hd = m.dim, m.ffn_expansion_factor, m.heads
    c1, c2, c3, c4 = d, 2 * d, 4 * d, 8 * d
    (p1, p2, p3), (s1, s2, s3) = m.prompt_dims, m.prompt_sizes
    n = m.num_blocks
    s = _task_prompt(m.in_channels, m) + sum(_moe(d * 2 ** (lv - 1), m.moe_experts, m) for lv in m.moe_levels)
    s += _conv(m.in_channels, c1, 3)
    s += n[0] * _block(c1, hd[0], f) + n[1] * _block(c2, hd[1], f) + n[2] * _block(c3, hd[2], f)
    s += n[3] * _block(c4, hd[3], f)
    s += _conv(c1, c1 // 2, 3) + _conv(c2, c2 // 2, 3) + _conv(c3, c3 // 2, 3)  # downsamples
    s += _prompt(p3, s3, c4, m) + _block(c4 + p3, hd[2], f) + _conv(c4 + p3, c3, 1)
    s += _conv(c3, 2 * c3, 3) + _conv(c2 + c3, c3, 1) + n[2] * _block(c3, hd[2], f)
    s += _prompt(p2, s2, c3, m) + _block(c3 + p2, hd[2], f) + _conv(c3 + p2, c3, 1)
    s += _conv(c3, 2 * c3, 3) + _conv(2 * c2, c2, 1) + n[1] * _block(c2, hd[1], f)
    s += _prompt(p1, s1, c2, m) + _block(c2 + p1, hd[2], f) + _conv(c2 + p1, c2, 1)
    s += _conv(c2, 2 * c2, 3) + n[0] * _block(c2, hd[0], f)
    s += m.num_refinement_blocks * _block(c2, hd[0], f) + _conv(c2, m.out_channels, 3)
    fusion = 2 * c2 + 2 * m.out_channels + _task_prompt(c2, m) + _moe(c2, m.fusion_experts, m)
    fusion += (m.fusion_blocks + m.fusion_refinement_blocks) * _block(c2, hd[0], f) + _conv(c2, m.out_channels, 3)
    return s, fusion


# modules the public code defines but never calls (chnl_reduce1-3, reduce_noise_channel_1-3); we omit them
PUBLIC_UNUSED = _conv(64, 64, 1) + _conv(128, 128, 1) + _conv(320, 256, 1) + _conv(48 + 64, 48, 1) \
    + _conv(96 + 128, 96, 1) + _conv(192 + 256, 192, 1)


@pytest.mark.parametrize("name", ["paper", "small", "tiny"])
def test_parameter_count_matches_architecture(name: str) -> None:
    cfg = load_config(name).model
    counts = parameter_summary(TGECNet(cfg))
    stage1, fusion = arithmetic_counts(cfg)
    assert counts["stage1"] == stage1
    assert counts["fusion"] == fusion
    assert counts["total"] == stage1 + fusion


def test_paper_counts_agree_with_published_arithmetic() -> None:
    """~38.6M (stage 1) and ~40.2M (total) for the public code = ours + its six never-called 1x1 convolutions."""
    cfg = load_config("paper").model
    stage1, fusion = arithmetic_counts(cfg)
    assert abs((stage1 + PUBLIC_UNUSED) / 1e6 - 38.6) < 0.05
    assert abs((stage1 + fusion + PUBLIC_UNUSED) / 1e6 - 40.2) < 0.05
    assert abs(fusion / 1e6 - 1.63) < 0.01  # trainable share in stage 2


# ---------------------------------------------------------------------------------------------------------------
def test_shapes(tiny: TGECNet) -> None:
    x = torch.rand(2, 1, 40, 48)
    out = tiny.restore(x)
    assert out.image.shape == x.shape
    assert out.features.shape == (2, 2 * tiny.cfg.dim, 40, 48)
    assert out.balance.dim() == 0 and float(out.balance.detach()) >= 0
    fused = tiny(torch.rand(2, 1, 40, 48), x)
    assert fused.fused.shape == fused.vis_restored.shape == fused.ir_restored.shape == x.shape


@pytest.mark.parametrize("hw", [(36, 40), (8, 64), (40, 30)])
def test_bad_sizes_are_rejected(tiny: TGECNet, hw: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny.restore(torch.rand(1, 1, *hw))


def test_global_residual_identity_when_output_is_zero(tiny: TGECNet) -> None:
    torch.nn.init.zeros_(tiny.restorer.output.weight)
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(tiny.restore(x).image, x)
    # stage 2: zero fusion output conv -> fused = theta * R_V + gamma * R_I = V + I (weights initialised to 1)
    torch.nn.init.zeros_(tiny.fusion.output.weight)
    v = torch.rand(2, 1, 32, 32)
    tiny.eval()
    out = tiny(v, x)
    torch.testing.assert_close(out.fused, v + x)


def test_level1_moe_is_used_in_both_stages(tiny: TGECNet) -> None:
    calls: list[int] = []
    tiny.restorer.degrad_moe["1"].register_forward_hook(lambda *a: calls.append(1))
    tiny.eval()
    v, i = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    out = tiny(v, i)
    assert calls, "stage 2 must apply the level-1 MoE (the public code discards its output)"
    # and the fusion path's restorations are exactly the stage-1 restorations of each modality
    torch.testing.assert_close(out.vis_restored, tiny.restore(v).image)
    torch.testing.assert_close(out.ir_restored, tiny.restore(i).image)


def test_moe_placement_is_configuration(tiny_cfg: ModelConfig) -> None:
    import dataclasses

    m = TGECNet(dataclasses.replace(tiny_cfg, moe_levels=(2,)))
    assert sorted(m.restorer.degrad_moe.keys()) == ["2"]
    assert m.restore(torch.rand(1, 1, 32, 32)).image.shape == (1, 1, 32, 32)


def test_stage2_freezing_only_fusion_gets_gradients(tiny: TGECNet) -> None:
    tiny.freeze_restorer()
    tiny.train()
    assert not tiny.restorer.training and tiny.fusion.training
    out = tiny(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))
    (out.fused.mean() + out.balance).backward()
    assert all(p.grad is None for p in tiny.restorer.parameters())
    fusion_grads = [p.grad for p in tiny.fusion.parameters()]
    assert all(g is not None for g in fusion_grads)
    assert sum(float(g.abs().sum()) for g in fusion_grads) > 0
    assert parameter_summary(tiny)["trainable"] == parameter_summary(tiny)["fusion"]


def test_no_half_casts_in_the_package() -> None:
    offenders = [str(p) for p in PKG.rglob("*.py") if re.search(r"\.half\(\)", p.read_text())]
    assert offenders == []


# ---------------------------------------------------------------------------------------------------------------
def test_topk_gates_have_exactly_k_nonzero_entries_summing_to_one() -> None:
    torch.manual_seed(1)
    for training in (True, False):
        gate = NoisyTopKGate(12, num_experts=11, k=6).train(training)
        with torch.no_grad():
            gate.w_noise.normal_()
        r = gate(torch.randn(500, 12))
        dense = r.dense(11)
        assert ((dense > 0).sum(1) == 6).all()
        torch.testing.assert_close(dense.sum(1), torch.ones(500))
        assert (r.indices.unique(dim=1).shape[1] == 6)  # distinct experts per row
        torch.testing.assert_close(r.importance, dense.sum(0))
        if not training:
            assert torch.equal(r.load, (dense > 0).sum(0).float())


def test_gate_noise_only_while_training() -> None:
    gate = NoisyTopKGate(8, 5, 2)
    with torch.no_grad():
        gate.w_noise.fill_(1.0)
    x = torch.randn(64, 8)
    gate.eval()
    assert torch.equal(gate(x).indices, gate(x).indices)
    gate.train()
    torch.manual_seed(0)
    a = gate(x).gates
    torch.manual_seed(1)
    b = gate(x).gates
    assert not torch.equal(a, b)


def test_balance_loss_nonnegative_and_zero_for_uniform() -> None:
    assert float(cv_squared(torch.full((11,), 3.0))) == 0.0
    assert float(cv_squared(torch.tensor([5.0]))) == 0.0
    v = torch.tensor([1.0, 2.0, 7.0, 0.0])
    expected = np.var([1, 2, 7, 0], ddof=1) / np.mean([1, 2, 7, 0]) ** 2
    assert float(cv_squared(v)) == pytest.approx(expected, rel=1e-6)
    torch.manual_seed(0)
    moe = PixelMoE(8, 16, num_experts=4, top_k=2, ratio=2.0)
    _, loss = moe(torch.randn(2, 8, 6, 6), torch.randn(2, 16))
    assert float(loss.detach()) >= 0


def test_moe_combination_and_dispatch_modes_agree() -> None:
    torch.manual_seed(0)
    moe = PixelMoE(8, 16, num_experts=5, top_k=3, ratio=2.0).eval()
    x, p = torch.randn(2, 8, 5, 7), torch.randn(2, 16)
    y_sparse, l_sparse = moe(x, p)
    moe.dispatch = "dense"
    y_dense, l_dense = moe(x, p)
    torch.testing.assert_close(y_sparse, y_dense)
    torch.testing.assert_close(l_sparse, l_dense)
    # explicit formula for one pixel: y = log(sum_i g_i exp(E_i(x))) + x
    tok = x[1, :, 2, 3]
    u = torch.cat([tok, moe.fc(p[1])])[None]
    r = moe.gate(u)
    outs = torch.stack([moe.experts[int(e)](tok[None])[0] for e in r.indices[0]])
    ref = torch.log((r.gates[0][:, None] * outs.exp()).sum(0)) + tok
    torch.testing.assert_close(y_sparse[1, :, 2, 3], ref, rtol=1e-5, atol=1e-5)


def test_every_expert_joins_the_graph_even_without_tokens() -> None:
    torch.manual_seed(0)
    moe = PixelMoE(4, 8, num_experts=6, top_k=1, ratio=2.0)
    y, loss = moe(torch.randn(1, 4, 1, 1), torch.randn(1, 8))  # one pixel: 5 experts get no token
    (y.sum() + loss).backward()
    assert all(p.grad is not None for p in moe.experts.parameters())


# ---------------------------------------------------------------------------------------------------------------
def test_configs_load_and_validate(tmp_path: Path) -> None:
    assert {"paper", "small", "tiny"} <= set(available_configs())
    paper = load_config("paper")
    assert paper.model == ModelConfig()  # the dataclass defaults are the paper's values
    assert paper.stage1.w_grad == 10.0 and paper.stage2.w_grad == 5.0 and paper.stage2.patch_size == 64
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\ndimm = 3\n")
    with pytest.raises(ValueError, match="dimm"):
        load_config(bad)
    with pytest.raises(ValueError, match="heads"):
        config_from_dict({"model": {"dim": 6, "heads": [4, 1, 1, 1]}})
    with pytest.raises(FileNotFoundError, match="paper"):
        load_config("nonexistent")
    assert config_from_dict(paper.to_dict()) == paper
