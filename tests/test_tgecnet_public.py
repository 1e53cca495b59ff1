"""The authors' public checkpoints: their parameter layout maps one-to-one onto our model, a Lightning ``.ckpt``
and a ``stage1.pth`` built in that layout from random weights import, fuse and evaluate, nothing pickled inside
is ever executed, mismatches are named, and ``compat="public"`` is the published stage-2 forward."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import run_cli
from tgecnet_ref.config import load_config
from tgecnet_ref.infer import Fuser
from tgecnet_ref.model import TGECNet
from tgecnet_ref.model.layers import fast_inference
from tgecnet_ref.public import PublicCheckpointError, load_public, public_layout, to_ours, to_public
from tgecnet_ref.safe_pickle import UnsafeFileError, safe_torch_load
from tgecnet_ref.train.checkpoint import expected_shapes, load_checkpoint
from tgecnet_ref.weights import load_weights

DATA = Path(__file__).resolve().parent / "data"
MARKER_ENV = "TGECNET_TEST_MARKER"

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _write_marker(path: str) -> str:
    Path(path).write_text("payload ran")
    return "x"


class Payload:
    """Pickles as a call of ``_write_marker(path)``: loading it with plain pickle writes the marker file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (_write_marker, (self.path,))


class SystemPayload:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"echo system > {self.path}",))


def _pinned_layout() -> dict[str, tuple[int, ...]]:
    rows = [ln.split() for ln in (DATA / "tgecnet_public_stage2_keys.txt").read_text().splitlines()
            if ln and not ln.startswith("#")]
    return {k: tuple(int(v) for v in s.split("x")) for k, s in rows}


def _public_state(ours: dict[str, torch.Tensor], stage: int, seed: int = 0) -> collections.OrderedDict:
    """Our weights under the public names (``net.`` prefix), plus what the public file holds besides them:
    the six unused 1x1 convolutions, the MoE's mean/std buffers and a training-loss module's fixed kernels."""
    g = torch.Generator().manual_seed(seed)
    out = collections.OrderedDict()
    for k, v in ours.items():
        if stage == 1 and not k.startswith("restorer."):
            continue
        out["net." + to_public(k)] = v.clone()
    for name, shape in (("chnl_reduce1.weight", (8, 8, 1, 1)), ("reduce_noise_channel_2.weight", (4, 12, 1, 1))):
        out["net." + name] = torch.randn(shape, generator=g)
    moes = ["degradmoe1", "degradmoe2", "degradmoe3"] + (["fusionmoe1"] if stage == 2 else [])
    for moe in moes:
        out[f"net.{moe}.model.mean"] = torch.zeros(1)
        out[f"net.{moe}.model.std"] = torch.ones(1)
    out["FusionLoss.sobelconv.weightx"] = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])[None, None]
    return out


def _lightning(state: collections.OrderedDict, extra: dict | None = None) -> dict:
    """A checkpoint with the structure ``lightning.pytorch`` writes (2.x): counters, loops, callbacks,
    optimizer and scheduler states, hyper-parameters as an ``argparse.Namespace`` object."""
    trainable = [v for k, v in state.items() if k.startswith("net.")][:3]
    return {
        "epoch": 39, "global_step": 13280, "pytorch-lightning_version": "2.1.2", "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 40, "completed": 39}}}},
        "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, "
                      "'every_n_epochs': 5, 'train_time_interval': None}": {
                          "monitor": None, "best_model_score": None, "best_model_path": "/root/ckpt/epoch=39.ckpt",
                          "kth_value": torch.tensor(float("inf")), "best_k_models": {}, "dirpath": "/root/ckpt"}},
        "optimizer_states": [{"state": {i: {"step": torch.tensor(13280.0), "exp_avg": torch.zeros_like(t),
                                            "exp_avg_sq": torch.zeros_like(t)} for i, t in enumerate(trainable)},
                              "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8,
                                                "weight_decay": 0.01, "params": [0, 1, 2]}]}],
        "lr_schedulers": [{"warmup_epochs": 5, "max_epochs": 180, "base_lrs": [1e-4], "last_epoch": 39,
                           "_last_lr": [2.5e-5]}],
        "hparams_name": "kwargs", "hyper_parameters": argparse.Namespace(batch_size=10, epochs=40),
        **(extra or {}),
    }


@pytest.fixture(scope="module")
def tiny() -> dict:
    torch.manual_seed(1)
    cfg = load_config("tiny")
    model = TGECNet(cfg.model)
    with torch.no_grad():  # make the fusion-weight parameters differ from their initial ones
        for p in model.fusion.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return {"cfg": cfg, "state": model.state_dict()}


# -- layout and mapping ------------------------------------------------------------------------------------------
def test_public_layout_is_pinned_and_maps_one_to_one_onto_the_paper_model() -> None:
    pinned = _pinned_layout()
    assert public_layout(2) == pinned and len(pinned) == 867
    assert sum(int(np.prod(s)) for s in pinned.values()) == 40_215_730  # the public stage-2 count (40.2M)
    stage1 = public_layout(1)
    fusion = ("param_", "Refinement.", "Output.", "task_promptfusion.", "fusionmoe1.", "Decoder_level1.")
    assert stage1 == {k: v for k, v in pinned.items() if not k.startswith(fusion)}
    ours = expected_shapes(load_config("paper").model)  # built on the meta device: nothing allocated
    for stage, layout in ((1, stage1), (2, pinned)):
        mapped = {to_ours(k): v for k, v in layout.items() if to_ours(k) is not None}
        want = {k: v for k, v in ours.items() if stage == 2 or k.startswith("restorer.")}
        assert mapped == want  # every parameter of ours filled, with the same shape, nothing left over
        dropped = sorted(k for k in layout if to_ours(k) is None)
        assert len(dropped) == 6 + 2 * (3 if stage == 1 else 4)  # six 1x1 convs, mean/std of each MoE
        assert all(to_public(to_ours(k)) == k for k in layout if to_ours(k) is not None)


def test_name_mapping_examples() -> None:
    assert to_ours("degradmoe1.model.el.0.fc1.weight") == "restorer.degrad_moe.1.experts.0.fc1.weight"
    assert to_ours("degradmoe3.model.w_g") == "restorer.degrad_moe.3.gate.w_gate"
    assert to_ours("fusionmoe1.model.w_n") == "fusion.fusion_moe.gate.w_noise"
    assert to_ours("encoder_level2.3.norm1.body.bias") == "restorer.encoder_level2.3.norm1.bias"
    assert to_ours("task_prompt.CondNet.8.weight") == "restorer.task_prompt.cond_net.8.weight"
    assert to_ours("task_promptfusion.lastOut.bias") == "fusion.fusion_prompt.last_out.bias"
    assert to_ours("param_alpha") == "fusion.alpha" and to_ours("Output.weight") == "fusion.output.weight"
    assert to_ours("Decoder_level1.0.norm2.body.weight") == "fusion.decoder.0.norm2.weight"
    assert to_ours("Refinement.1.ffn.dwconv.weight") == "fusion.refinement.1.ffn.dwconv.weight"
    assert to_ours("refinement.1.ffn.dwconv.weight") == "restorer.refinement.1.ffn.dwconv.weight"
    assert to_ours("output.weight") == "restorer.output.weight"
    assert to_ours("chnl_reduce3.weight") is None and to_ours("reduce_noise_channel_1.weight") is None
    assert to_ours("fusionmoe1.model.std") is None


# -- import, fuse, evaluate -------------------------------------------------------------------------------------
def test_paper_size_lightning_checkpoint_imports_and_fuses(tmp_path: Path) -> None:
    """Every public name and shape (from the pinned list), random weights, the Lightning wrapper."""
    g = torch.Generator().manual_seed(0)
    state = collections.OrderedDict()
    for k, shape in _pinned_layout().items():
        state["net." + k] = (torch.ones(shape) if k.endswith((".std", "weight")) and "norm" in k
                             else torch.randn(shape, generator=g) * 0.02)
    path = tmp_path / "stage2_pretrained.ckpt"
    torch.save(_lightning(state), path)
    w = load_weights(path)
    assert w.stage == 2 and w.origin == "public" and w.config.name == "paper" and w.config.model.compat == "public"
    assert len(w.state) == 853 and "argparse.Namespace" in w.note
    for k, v in state.items():
        if to_ours(k[4:]) is not None:
            assert torch.equal(w.state[to_ours(k[4:])], v), k
    rng = np.random.default_rng(0)
    for name in ("ir", "vis"):
        shape = (40, 48) if name == "ir" else (40, 48, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / f"{name}.png")
    res = run_cli(["fuse", "--checkpoint", str(path), "--ir", str(tmp_path / "ir.png"), "--vis",
                   str(tmp_path / "vis.png"), "--out", str(tmp_path / "fused.png"), "--device", "cpu"])
    assert "public lightning checkpoint, stage 2" in res.output
    fused = np.asarray(Image.open(tmp_path / "fused.png"))
    assert fused.shape == (40, 48, 3)


def test_lightning_checkpoint_never_runs_its_pickle_payload(tiny: dict, tmp_path: Path) -> None:
    marker, marker2 = tmp_path / "marker", tmp_path / "marker2"
    ckpt = _lightning(_public_state(tiny["state"], 2), {"payload": Payload(marker),
                                                          "callbacks_extra": SystemPayload(marker2)})
    path = tmp_path / "stage2_pretrained.ckpt"
    torch.save(ckpt, path)
    # the payload is real: an unrestricted load runs it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "payload ran" and marker2.is_file()
    marker.unlink()
    marker2.unlink()
    obj, opaque = safe_torch_load(path)
    assert not marker.exists() and not marker2.exists()
    assert {"argparse.Namespace", f"{__name__}._write_marker", "posix.system"} <= opaque or \
        {"argparse.Namespace", f"{__name__}._write_marker"} <= opaque
    assert obj["payload"].name.endswith("_write_marker") and obj["payload"].args == (str(marker),)
    assert obj["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-4
    assert torch.equal(obj["callbacks"][next(iter(obj["callbacks"]))]["kth_value"], torch.tensor(float("inf")))
    # import + fuse through the public path: same fused luminance as our model on the same weights (both on the
    # inference fast path, the Fuser's default)
    fuser = Fuser(path, device="cpu", config="tiny")
    assert not marker.exists() and not marker2.exists()
    assert fuser.config.model.compat == "public"
    model = TGECNet(dataclasses.replace(tiny["cfg"].model, compat="public"))
    model.load_state_dict(tiny["state"])
    model.eval()
    rng = np.random.default_rng(3)
    vis, ir = rng.integers(0, 256, (2, 32, 40), dtype=np.uint8)
    with torch.no_grad(), fast_inference():
        want = model(torch.from_numpy(vis / 255.0).float()[None, None],
                     torch.from_numpy(ir / 255.0).float()[None, None]).fused.clamp(0, 1)[0, 0].numpy()
    assert np.array_equal(fuser.fuse_luminance(vis, ir), want)


def test_public_checkpoint_fuses_a_dataset_and_evaluates(tiny: dict, tmp_path: Path) -> None:
    path = tmp_path / "stage2_pretrained.ckpt"
    torch.save(_lightning(_public_state(tiny["state"], 2)), path)
    rng = np.random.default_rng(1)
    for i in range(4):  # four small pairs (the embedded samples are 640x480: minutes of CPU for the model)
        for mod, shape in (("ir", (48, 64)), ("vis", (48, 64, 3))):
            folder = tmp_path / "src" / "tiny" / mod
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i}.png")
    ds = tmp_path / "ds"
    run_cli(["build", "--source", str(tmp_path / "src"), "--out", str(ds), "--degradations", "noise50",
             "--workers", "1", "--no-progress"])
    run_cli(["fuse", "--checkpoint", str(path), "--config", "tiny", "--dataset", str(ds), "--out",
             str(tmp_path / "fused"), "--device", "cpu", "--no-progress"])
    res = run_cli(["eval", "--dataset", str(ds), "--fused", str(tmp_path / "fused"), "--method",
                   "tgecnet-public-random", "--out", str(tmp_path / "results.json"), "--no-progress"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["method"] == "tgecnet-public-random", res.output
    assert "noise50" in json.dumps(results)


def test_stage1_pth_initialises_stage2_training(tiny: dict, tmp_path: Path) -> None:
    from tests.test_tgecnet_checkpoint_checks import Pairs
    from tgecnet_ref.train import TrainOptions, train

    pth = tmp_path / "stage1.pth"
    torch.save(_public_state(tiny["state"], 1), pth)  # what the public stage1/test.py writes
    imp = load_public(pth)
    assert imp.stage == 1 and imp.kind == "state_dict" and imp.ignored == ("FusionLoss.sobelconv.weightx",)
    notes: list[str] = []
    r = train(TrainOptions(dataset=Pairs(2), stage=2, out=tmp_path / "s2", config="tiny", epochs=1, init=pth,
                           progress=False, echo=notes.append))
    assert r.steps == 2 and any("stage1.pth: public state_dict checkpoint, stage 1" in n for n in notes)
    trained = load_checkpoint(tmp_path / "s2" / "last.pt")["model"]
    for k, v in tiny["state"].items():
        if k.startswith("restorer."):
            assert torch.equal(trained[k], v), k  # imported, then frozen


def test_mismatched_public_checkpoint_names_what_is_wrong(tiny: dict, tmp_path: Path) -> None:
    state = _public_state(tiny["state"], 2)
    del state["net.degradmoe2.model.w_g"]
    state["net.degradmoe4.fc.weight"] = torch.zeros(3, 3)
    state["net.Output.weight"] = torch.zeros(1, 5, 3, 3)
    path = tmp_path / "bad.ckpt"
    torch.save(_lightning(state), path)
    with pytest.raises(PublicCheckpointError) as err:
        load_weights(path, config="tiny")
    msg = str(err.value)
    assert "net.degradmoe2.model.w_g" in msg and "restorer.degrad_moe.4.fc.weight" in msg
    assert "fusion.output.weight (1, 5, 3, 3)" in msg
    # the paper configuration (the default) does not match tiny weights: a clear error, not a traceback
    res = run_cli(["fuse", "--checkpoint", str(path), "--ir", str(path), "--vis", str(path), "--out",
                   str(tmp_path / "o.png")], ok=False)
    assert res.exit_code == 1 and "do not match the 'paper' model" in res.output and "Traceback" not in res.output


def test_not_a_public_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "a.ckpt").write_bytes(b"not a zip")
    with pytest.raises(PublicCheckpointError, match="zip archive"):
        load_public(tmp_path / "a.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "b.pth")
    with pytest.raises(PublicCheckpointError, match="not a TG-ECNet public checkpoint"):
        load_public(tmp_path / "b.pth")


def _archive_with(pickled: bytes, storage: bytes, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickled)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", storage)
    return path


class _Ref:
    pass


class _Tensor:
    def __init__(self, size: tuple[int, ...], offset: int = 0) -> None:
        self.size, self.offset = size, offset

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (_Ref(), self.offset, self.size, (1,) * len(self.size), False,
                                                   collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def __init__(self, fh: io.BytesIO, numel: int) -> None:
        super().__init__(fh, protocol=2)
        self.numel = numel

    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, "0", "cpu", self.numel) if isinstance(obj, _Ref) else None


@pytest.mark.parametrize("size,offset,numel,nbytes,match", [
    ((4,), 0, 4, 16, None),
    ((100,), 0, 4, 16, "past the end"),
    ((4,), 2, 4, 16, "past the end"),
    ((4,), 0, 4, 12, "holds 12 bytes"),
])
def test_restricted_unpickler_checks_tensor_records(size, offset, numel, nbytes, match, tmp_path: Path) -> None:
    fh = io.BytesIO()
    _Pickler(fh, numel).dump({"net.x": _Tensor(size, offset)})
    path = _archive_with(fh.getvalue(), np.arange(nbytes // 4, dtype=np.float32).tobytes()[:nbytes], tmp_path / "c.pth")
    if match is None:
        obj, opaque = safe_torch_load(path)
        assert torch.equal(obj["net.x"], torch.arange(4, dtype=torch.float32)) and not opaque
    else:
        with pytest.raises(UnsafeFileError, match=match):
            safe_torch_load(path)


def test_compat_public_is_the_published_stage2_forward(tiny: dict) -> None:
    """In the public stage-2 code the level-1 MoE output is discarded: the same as a model without it."""
    cfg = tiny["cfg"].model
    pub = TGECNet(dataclasses.replace(cfg, compat="public"))
    pub.load_state_dict(tiny["state"])
    no_moe1 = TGECNet(dataclasses.replace(cfg, moe_levels=(2, 3)))
    no_moe1.load_state_dict({k: v for k, v in tiny["state"].items() if not k.startswith("restorer.degrad_moe.1.")})
    ours = TGECNet(cfg)
    ours.load_state_dict(tiny["state"])
    torch.manual_seed(5)
    vis, ir = torch.rand(2, 1, 1, 32, 32)
    with torch.no_grad():
        fp, fn, fo = (m.eval()(vis, ir).fused for m in (pub, no_moe1, ours))
        rp, ro = (m.restore(vis).image for m in (pub, ours))
    assert torch.equal(fp, fn)  # stage 2: level-1 MoE bypassed
    assert not torch.allclose(fp, fo)  # ... which ours does not do
    assert torch.equal(rp, ro)  # stage 1 is the same in both modes


def test_huge_stride_zero_view_is_refused_before_any_allocation(tmp_path: Path) -> None:
    """A 16-byte storage viewed as 10^11 floats (stride 0) is caught by the shape check, not allocated."""

    class _Huge(_Tensor):
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (_Ref(), 0, (10**11,), (0,), False, collections.OrderedDict()))

    fh = io.BytesIO()
    _Pickler(fh, 4).dump({"net.param_alpha": _Huge((1,))})
    path = _archive_with(fh.getvalue(), np.zeros(4, np.float32).tobytes(), tmp_path / "huge.pth")
    with pytest.raises(PublicCheckpointError, match=r"fusion.alpha \(100000000000,\)"):
        load_weights(path, config="tiny")


def test_compressed_storage_is_refused(tmp_path: Path) -> None:
    fh = io.BytesIO()
    _Pickler(fh, 4).dump({"net.x": _Tensor((4,))})
    path = tmp_path / "z.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", fh.getvalue())
        zf.writestr("archive/data/0", np.zeros(4, np.float32).tobytes())
    with pytest.raises(UnsafeFileError, match="compressed"):
        safe_torch_load(path)
