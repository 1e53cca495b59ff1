"""The TG-ECNet authors' released checkpoints: their parameter layout, the name mapping to ours, a safe import.

The public repository (LeeX54946/TG-ECNet, ``stage1/`` and ``stage2/``) trains a Lightning module whose network
is the attribute ``net``; its README points to three files:

* ``stage1/ckpt/stage1_pretrained.ckpt`` and ``stage2/ckpt/stage2_pretrained.ckpt``: Lightning checkpoints, a
  dict with ``state_dict`` (``net.*`` plus the training-loss modules' fixed tensors), ``optimizer_states``,
  ``lr_schedulers``, ``callbacks``, ``loops``, version and counters;
* ``stage2/stage1.pth``: ``torch.save(lightning_module.state_dict())`` of the stage-1 module (``net.*`` keys).

Their network has the paper's widths hard-coded; :func:`public_layout` lists its parameters (names and shapes)
as the public ``TG_ECNet.__init__`` defines them, for stage 1 and stage 2 (``tests/data`` pins the listing).

Name mapping public -> ours (:func:`to_ours`, the inverse :func:`to_public`), after removing ``net.``:

==========================================  ===========================================================
public                                       ours
==========================================  ===========================================================
``<block>.norm{1,2}.body.{weight,bias}``     ``<block>.norm{1,2}.{weight,bias}`` (LayerNorm wrapper)
``task_prompt.CondNet.*`` / ``lastOut.*``    ``restorer.task_prompt.cond_net.*`` / ``last_out.*``
``degradmoeN.fc.*``                          ``restorer.degrad_moe.N.fc.*``
``degradmoeN.model.el.i.fc{1,2}.*``          ``restorer.degrad_moe.N.experts.i.fc{1,2}.*``
``degradmoeN.model.w_g`` / ``w_n``           ``restorer.degrad_moe.N.gate.w_gate`` / ``w_noise``
``param_alpha/beta/theta/gamma``             ``fusion.alpha/beta/theta/gamma``
``Refinement.*`` / ``Output.*``              ``fusion.refinement.*`` / ``fusion.output.*``
``task_promptfusion.*``                      ``fusion.fusion_prompt.*`` (same inner renames)
``fusionmoe1.*``                             ``fusion.fusion_moe.*`` (same inner renames)
``Decoder_level1.*``                         ``fusion.decoder.*``
any other ``x``                              ``restorer.x``
==========================================  ===========================================================

Dropped on purpose (:data:`DROPPED`): ``chnl_reduce1-3`` and ``reduce_noise_channel_1-3`` (six 1x1
convolutions the public code defines and never calls) and the MoE's constant buffers ``model.mean``/
``model.std`` (0 and 1, the standard normal of its load estimate). Keys outside ``net.`` in a Lightning
``state_dict`` belong to the training losses and are ignored (reported). Every parameter of ours must be
filled with a tensor of the right shape, and no other ``net.`` key may remain: otherwise
:class:`PublicCheckpointError` names what is missing, unexpected or mis-shaped.

The files are read by :func:`tgecnet_ref.safe_pickle.safe_torch_load`: nothing in them is executed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .safe_pickle import UnsafeFileError, safe_torch_load
from .train.checkpoint import CheckpointError

PREFIX = "net."
DROPPED = re.compile(r"^(chnl_reduce[123]|reduce_noise_channel_[123])\."
                     r"|^(degradmoe[123]|fusionmoe1)\.model\.(mean|std)$")
FUSION_RENAMES: tuple[tuple[str, str], ...] = (
    ("param_alpha", "fusion.alpha"), ("param_beta", "fusion.beta"), ("param_theta", "fusion.theta"),
    ("param_gamma", "fusion.gamma"), ("Refinement.", "fusion.refinement."), ("Output.", "fusion.output."),
    ("task_promptfusion.", "fusion.fusion_prompt."), ("fusionmoe1.", "fusion.fusion_moe."),
    ("Decoder_level1.", "fusion.decoder."),
)
INNER_RENAMES: tuple[tuple[str, str], ...] = (
    (".norm1.body.", ".norm1."), (".norm2.body.", ".norm2."), ("CondNet.", "cond_net."), ("lastOut.", "last_out."),
    (".model.el.", ".experts."), (".model.w_g", ".gate.w_gate"), (".model.w_n", ".gate.w_noise"),
)


class PublicCheckpointError(CheckpointError):
    """A file in the public layout whose weights do not fill our model (names what is missing/unexpected)."""


def to_ours(name: str) -> str | None:
    """Our parameter name for a public one (``net.`` already removed); ``None`` for :data:`DROPPED` names."""
    if DROPPED.search(name):
        return None
    out = None
    for old, new in FUSION_RENAMES:
        if name == old or (old.endswith(".") and name.startswith(old)):
            out = new + name[len(old):]
            break
    if out is None:
        m = re.match(r"^degradmoe(\d+)\.(.*)$", name)
        out = f"restorer.degrad_moe.{m.group(1)}.{m.group(2)}" if m else f"restorer.{name}"
    out = "." + out  # so that renames anchored on a leading dot also match the first component
    for old, new in INNER_RENAMES:
        out = out.replace(old, new)
    return out[1:]


def to_public(name: str) -> str:
    """The public name (without ``net.``) of one of our parameter names (inverse of :func:`to_ours`)."""
    out = "." + name
    for old, new in reversed(INNER_RENAMES):
        out = out.replace(new, old)
    out = out[1:]
    for old, new in FUSION_RENAMES:
        if out == new or (new.endswith(".") and out.startswith(new)):
            return old + out[len(new):]
    m = re.match(r"^restorer\.degrad_moe\.(\d+)\.(.*)$", out)
    if m:
        return f"degradmoe{m.group(1)}.{m.group(2)}"
    if not out.startswith("restorer."):
        raise ValueError(f"{name!r} is not a TG-ECNet parameter name")
    return out[len("restorer."):]


# -- the public network's parameters (paper widths, as the public TG_ECNet.__init__ defines them) -------------
def _block(p: str, d: int, heads: int, out: dict[str, tuple[int, ...]], ffn: float = 2.66) -> None:
    hid = int(d * ffn)
    out.update({
        f"{p}.norm1.body.weight": (d,), f"{p}.norm1.body.bias": (d,), f"{p}.attn.temperature": (heads, 1, 1),
        f"{p}.attn.qkv.weight": (3 * d, d, 1, 1), f"{p}.attn.qkv_dwconv.weight": (3 * d, 1, 3, 3),
        f"{p}.attn.project_out.weight": (d, d, 1, 1), f"{p}.norm2.body.weight": (d,), f"{p}.norm2.body.bias": (d,),
        f"{p}.ffn.project_in.weight": (2 * hid, d, 1, 1), f"{p}.ffn.dwconv.weight": (2 * hid, 1, 3, 3),
        f"{p}.ffn.project_out.weight": (d, hid, 1, 1),
    })


def _stage(p: str, n: int, d: int, heads: int, out: dict[str, tuple[int, ...]]) -> None:
    for i in range(n):
        _block(f"{p}.{i}", d, heads, out)


def _taskprompt(p: str, in_dim: int, out: dict[str, tuple[int, ...]]) -> None:
    for i, (o, c, k) in enumerate(((64, in_dim, 3), (64, 64, 3), (64, 64, 1), (64, 64, 1), (32, 64, 1))):
        out[f"{p}.CondNet.{2 * i}.weight"] = (o, c, k, k)
        out[f"{p}.CondNet.{2 * i}.bias"] = (o,)
    out.update({f"{p}.lastOut.weight": (32, 32), f"{p}.lastOut.bias": (32,), f"{p}.dictionary": (32, 256)})


def _taskmoe(p: str, d: int, out: dict[str, tuple[int, ...]]) -> None:
    hid = int(d * 2.66)
    out.update({f"{p}.fc.weight": (d, 256), f"{p}.fc.bias": (d,)})
    for i in range(11):
        out.update({f"{p}.model.el.{i}.fc1.weight": (hid, d), f"{p}.model.el.{i}.fc1.bias": (hid,),
                    f"{p}.model.el.{i}.fc2.weight": (d, hid), f"{p}.model.el.{i}.fc2.bias": (d,)})
    out.update({f"{p}.model.w_g": (2 * d, 11), f"{p}.model.w_n": (2 * d, 11), f"{p}.model.mean": (1,),
                f"{p}.model.std": (1,)})


def public_layout(stage: int) -> dict[str, tuple[int, ...]]:
    """Names (without ``net.``) and shapes of the public network's state dict, stage 1 or 2 (paper widths:
    dim 48, blocks 4/6/6/8, 4 refinement blocks, heads 1/2/4/8, ffn 2.66, 11 experts, atoms 32 x 256)."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    o: dict[str, tuple[int, ...]] = {}
    o["patch_embed.proj.weight"] = (48, 1, 3, 3)
    for n, (pd, ps, lin) in enumerate(((64, 64, 96), (128, 32, 192), (320, 16, 384)), start=1):
        o.update({f"prompt{n}.prompt_param": (1, 5, pd, ps, ps), f"prompt{n}.linear_layer.weight": (5, lin),
                  f"prompt{n}.linear_layer.bias": (5,), f"prompt{n}.conv3x3.weight": (pd, pd, 3, 3)})
    o.update({"chnl_reduce1.weight": (64, 64, 1, 1), "chnl_reduce2.weight": (128, 128, 1, 1),
              "chnl_reduce3.weight": (256, 320, 1, 1), "reduce_noise_channel_1.weight": (48, 112, 1, 1),
              "reduce_noise_channel_2.weight": (96, 224, 1, 1), "reduce_noise_channel_3.weight": (192, 448, 1, 1)})
    _stage("encoder_level1", 4, 48, 1, o)
    o["down1_2.body.0.weight"] = (24, 48, 3, 3)
    _stage("encoder_level2", 6, 96, 2, o)
    o["down2_3.body.0.weight"] = (48, 96, 3, 3)
    _stage("encoder_level3", 6, 192, 4, o)
    o["down3_4.body.0.weight"] = (96, 192, 3, 3)
    _stage("latent", 8, 384, 8, o)
    o["up4_3.body.0.weight"] = (384, 192, 3, 3)
    o["reduce_chan_level3.weight"] = (192, 96 + 192, 1, 1)
    _block("noise_level3", 192 + 512, 4, o)
    o["reduce_noise_level3.weight"] = (192, 192 + 512, 1, 1)
    _stage("decoder_level3", 6, 192, 4, o)
    o["up3_2.body.0.weight"] = (384, 192, 3, 3)
    o["reduce_chan_level2.weight"] = (96, 192, 1, 1)
    _block("noise_level2", 96 + 224, 4, o)
    o["reduce_noise_level2.weight"] = (192, 96 + 224, 1, 1)
    _stage("decoder_level2", 6, 96, 2, o)
    o["up2_1.body.0.weight"] = (192, 96, 3, 3)
    _block("noise_level1", 96 + 64, 4, o)
    o["reduce_noise_level1.weight"] = (96, 96 + 64, 1, 1)
    _stage("decoder_level1", 4, 96, 1, o)
    _stage("refinement", 4, 96, 1, o)
    o["output.weight"] = (1, 96, 3, 3)
    _taskprompt("task_prompt", 1, o)
    for n, d in ((1, 48), (2, 96), (3, 192)):
        _taskmoe(f"degradmoe{n}", d, o)
    if stage == 2:
        o.update({"param_beta": (96, 1, 1), "param_alpha": (96, 1, 1), "param_theta": (1, 1, 1),
                  "param_gamma": (1, 1, 1)})
        _stage("Refinement", 4, 96, 1, o)
        o["Output.weight"] = (1, 96, 3, 3)
        _taskprompt("task_promptfusion", 96, o)
        _taskmoe("fusionmoe1", 96, o)
        _stage("Decoder_level1", 4, 96, 1, o)
    return o


# -- import ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublicImport:
    """Weights of a public checkpoint in our names.

    ``state``: our parameter name -> tensor (as stored; shapes not yet checked); ``stage``: 2 when the fusion
    head is present, else 1;
    ``kind``: ``"lightning"`` (a ``.ckpt`` dict with ``state_dict``) or ``"state_dict"`` (a ``.pth``);
    ``dropped``: public names deliberately not imported; ``ignored``: keys outside ``net.`` (training losses);
    ``opaque``: classes of other objects in the file that were recorded, not built (hyper-parameters,
    callbacks ...).
    """

    path: Path
    state: dict[str, torch.Tensor]
    stage: int
    kind: str
    dropped: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    opaque: tuple[str, ...] = field(default=())


def is_public_file(obj: Any) -> bool:
    """True for what :func:`safe_torch_load` returns from a public checkpoint (a Lightning dict with
    ``state_dict``, or a state dict whose keys start with ``net.``)."""
    if not isinstance(obj, Mapping):
        return False
    if isinstance(obj.get("state_dict"), Mapping):
        return True
    return bool(obj) and all(isinstance(k, str) for k in obj) and any(k.startswith(PREFIX) for k in obj)


def convert_state(raw: Mapping[str, Any], path: str | Path) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Map a public state dict to our names: ``(state, dropped, ignored)``.

    Raises :class:`PublicCheckpointError` for values that are not floating-point tensors and for two keys
    mapping to one parameter; names that map to nothing of ours are reported by :func:`check_filled`.
    """
    has_prefix = any(isinstance(k, str) and k.startswith(PREFIX) for k in raw)
    state: dict[str, torch.Tensor] = {}
    dropped, ignored = [], []
    for key, value in raw.items():
        if not isinstance(key, str):
            raise PublicCheckpointError(f"{path}: state dict key {key!r} is not a string")
        if has_prefix and not key.startswith(PREFIX):
            ignored.append(key)
            continue
        name = key[len(PREFIX):] if has_prefix else key
        ours = to_ours(name)
        if ours is None:
            dropped.append(key)
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise PublicCheckpointError(f"{path}: {key} is not a floating-point tensor ({type(value).__name__})")
        if ours in state:
            raise PublicCheckpointError(f"{path}: two keys map to our parameter {ours}")
        state[ours] = value.detach()  # a view of the file's storage: converted only after the shapes are checked
    return state, dropped, ignored


def load_public(path: str | Path) -> PublicImport:
    """Read a public ``.ckpt``/``.pth`` safely and map its weights to our names (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj, opaque = safe_torch_load(path)
    except UnsafeFileError as exc:
        raise PublicCheckpointError(str(exc)) from exc
    if not is_public_file(obj):
        raise PublicCheckpointError(f"{path}: neither a Lightning checkpoint (no 'state_dict') nor a state dict "
                                    "with 'net.' keys; not a TG-ECNet public checkpoint (.ckpt/.pth names are "
                                    "read as the authors' files; checkpoints of 'demmi train' are .pt or "
                                    ".safetensors)")
    kind = "lightning" if isinstance(obj.get("state_dict"), Mapping) else "state_dict"
    raw = obj["state_dict"] if kind == "lightning" else obj
    state, dropped, ignored = convert_state(raw, path)
    if not state:
        raise PublicCheckpointError(f"{path}: holds no TG-ECNet weights")
    stage = 2 if any(k.startswith("fusion.") for k in state) else 1
    return PublicImport(path, state, stage, kind, tuple(dropped), tuple(ignored), tuple(sorted(opaque)))


def check_filled(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, torch.Tensor], path: str | Path,
                 what: str = "the model") -> None:
    """Raise :class:`PublicCheckpointError` unless ``state`` has exactly the names of ``expected`` with the same
    shapes (naming up to 8 missing, unexpected and mis-shaped entries, with their public names)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k])}" for k in expected
              if k in state and tuple(state[k].shape) != tuple(expected[k])]
    if not (missing or unexpected or shapes):
        return

    def names(keys: list[str]) -> str:
        shown = []
        for k in keys[:8]:
            try:
                shown.append(f"{k} (public net.{to_public(k)})")
            except ValueError:
                shown.append(k)
        return ", ".join(shown) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} parameter(s) of {what} not in the file: {names(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected weight(s): {names(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es): {', '.join(shapes[:8])}")
    raise PublicCheckpointError(f"{path}: weights do not match {what}: " + "; ".join(parts))
