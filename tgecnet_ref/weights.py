"""One entry point for every kind of TG-ECNet weights file: ours (``.pt``, ``.safetensors``) and the authors'
public ones (Lightning ``.ckpt``, ``stage1.pth``), each checked against the model before it is built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import COMPAT_MODES, TGConfig, load_config
from .train.checkpoint import CheckpointError, checked_config, expected_shapes, load_checkpoint

PUBLIC_SUFFIXES = (".ckpt", ".pth")


@dataclass(frozen=True)
class LoadedWeights:
    """Weights ready for ``TGECNet(config.model).load_state_dict`` (``strict`` for stage 2; stage-1 weights
    fill ``restorer.*`` only when ``origin == "public"``).

    ``origin``: ``"ours"`` or ``"public"``; ``note``: one line saying what was imported and what was left out.
    """

    path: Path
    state: dict[str, torch.Tensor]
    config: TGConfig
    stage: int
    origin: str
    note: str = ""

    def restorer_state(self) -> dict[str, torch.Tensor]:
        """The ``restorer.*`` weights without the prefix."""
        return {k[len("restorer."):]: v for k, v in self.state.items() if k.startswith("restorer.")}


def is_public_path(path: str | Path) -> bool:
    """Files read as the authors' public checkpoints (by suffix: ``.ckpt``, ``.pth``)."""
    return Path(path).suffix.lower() in PUBLIC_SUFFIXES


def load_weights(
    path: str | Path, config: str | Path | TGConfig | None = None, compat: str | None = None
) -> LoadedWeights:
    """Load a weights file and check it against the model it will fill, before anything is built.

    * ours (``.pt``/``.safetensors``): the configuration stored in the file (bounds-checked) and every tensor's
      shape against it; ``config`` must be ``None`` (the file carries its own);
    * public (``.ckpt``/``.pth``, see :mod:`tgecnet_ref.public`): read without executing anything, names mapped,
      every parameter of ours filled (restorer only for a stage-1 file); ``config`` defaults to ``paper`` (the
      public network's widths), and ``compat`` to ``"public"`` for a stage-2 file (the forward those weights
      were trained with).

    ``compat`` (``"ours"``/``"public"``) overrides the model's ``compat`` option in either case.
    """
    path = Path(path)
    if compat is not None and compat not in COMPAT_MODES:
        raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
    if is_public_path(path):
        return _load_public(path, config, compat)
    if config is not None:
        raise CheckpointError(f"{path}: a tgecnet_ref checkpoint carries its own configuration; --config is only "
                              "for the authors' public .ckpt/.pth files")
    ckpt = load_checkpoint(path)
    cfg = checked_config(ckpt, path)
    stage = int(ckpt.get("stage", 2))
    if compat is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, compat=compat))
    return LoadedWeights(path, ckpt["model"], cfg, stage, "ours")


def _load_public(path: Path, config: str | Path | TGConfig | None, compat: str | None) -> LoadedWeights:
    from .public import check_filled, load_public

    imp = load_public(path)
    cfg = config if isinstance(config, TGConfig) else load_config(config or "paper")
    mode = compat or ("public" if imp.stage == 2 else cfg.model.compat)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, compat=mode))
    expected = expected_shapes(cfg.model)
    if imp.stage == 1:
        expected = {k: v for k, v in expected.items() if k.startswith("restorer.")}
    check_filled(expected, imp.state, path, what=f"the '{cfg.name}' model (stage {imp.stage})")
    state = {k: v.to(torch.float32).contiguous() for k, v in imp.state.items()}  # shapes known to be right
    note = (f"{path.name}: public {imp.kind} checkpoint, stage {imp.stage}, {len(imp.state)} tensors imported "
            f"into configuration '{cfg.name}' (compat={mode}); {len(imp.dropped)} unused public tensors dropped")
    if imp.ignored:
        note += f", {len(imp.ignored)} training-loss tensors ignored"
    if imp.opaque:
        note += f"; objects recorded, not built: {', '.join(imp.opaque[:4])}"
    return LoadedWeights(path, state, cfg, imp.stage, "public", note)
