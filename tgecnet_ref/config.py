"""Configurations of the reference TG-ECNet: model and training hyper-parameters as data.

A configuration is a TOML file with three tables, ``[model]``, ``[stage1]`` and ``[stage2]``, whose keys are
the fields of :class:`ModelConfig` and :class:`StageConfig`. Three ship with the package
(``tgecnet_ref/configs/{paper,small,tiny}.toml``); ``load_config`` also accepts a path to a user file.
Unknown keys are errors (a misspelt key must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of TG-ECNet (defaults: the paper / public code)."""

    in_channels: int = 1
    out_channels: int = 1
    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    layernorm: str = "WithBias"
    # PromptIR decoder prompts, for decoder levels 1, 2, 3 (the level-3 prompt acts on the latent)
    prompt_len: int = 5
    prompt_dims: tuple[int, ...] = (64, 128, 320)
    prompt_sizes: tuple[int, ...] = (64, 32, 16)
    # task prompt (CondNet + dictionary)
    atom_num: int = 32
    atom_dim: int = 256
    condnet_hidden: int = 64
    condnet_out: int = 32
    # degradation-aware mixture of experts, before the listed encoder levels (1-based)
    moe_levels: tuple[int, ...] = (1, 2, 3)
    moe_experts: int = 11
    moe_top_k: int = 6
    moe_noisy: bool = True
    moe_dispatch: str = "sparse"
    # fusion path (stage 2)
    fusion_experts: int = 11
    fusion_top_k: int = 6
    fusion_blocks: int = 4
    fusion_refinement_blocks: int = 4
    fusion_weight_init: float = 1.0  # alpha, beta (feature fusion)
    restored_weight_init: float = 1.0  # theta, gamma (weights of the two restored images)
    # "ours": the level-1 MoE acts in both stages. "public": the authors' published stage-2 forward, where the
    # level-1 MoE of the restorer is skipped in the stage-2 (fusion) pass only (their code computes it and
    # discards its output); stage 1 is the same in both. Use "public" with the authors' stage-2 weights.
    compat: str = "ours"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending field when the architecture cannot be built or is out of
        the bounds in :data:`MODEL_BOUNDS` (checked before anything is allocated, so that a crafted
        configuration cannot make the model builder allocate gigabytes)."""
        _check_types_and_bounds(self)
        if len(self.num_blocks) != 4 or len(self.heads) != 4:
            raise ValueError("model.num_blocks and model.heads need 4 entries (levels 1-3 and the latent)")
        if len(self.prompt_dims) != 3 or len(self.prompt_sizes) != 3:
            raise ValueError("model.prompt_dims and model.prompt_sizes need 3 entries (decoder levels 1-3)")
        bad = [lv for lv in self.moe_levels if lv not in (1, 2, 3)]
        if bad:
            raise ValueError(f"model.moe_levels must be among 1, 2, 3 (encoder levels), got {bad}")
        for lv, h in enumerate(self.heads):
            if (self.dim * 2**lv) % h:
                raise ValueError(f"model.heads[{lv}] = {h} does not divide {self.dim * 2**lv} channels")
        if (2 * self.dim) % self.heads[0]:
            raise ValueError("model.heads[0] must divide 2*dim (decoder level 1 and refinement)")
        widths = (2 * self.dim + self.prompt_dims[0], 4 * self.dim + self.prompt_dims[1],
                  8 * self.dim + self.prompt_dims[2])
        for w in widths:
            if w % self.heads[2]:
                raise ValueError(f"model.heads[2] = {self.heads[2]} must divide the prompt block width {w}")
        if not 1 <= self.moe_top_k <= self.moe_experts:
            raise ValueError("model.moe_top_k must be in [1, moe_experts]")
        if not 1 <= self.fusion_top_k <= self.fusion_experts:
            raise ValueError("model.fusion_top_k must be in [1, fusion_experts]")
        if self.moe_dispatch not in ("sparse", "dense"):
            raise ValueError("model.moe_dispatch must be 'sparse' or 'dense'")
        if self.in_channels != self.out_channels:
            raise ValueError("model.in_channels must equal model.out_channels (global residual)")
        if self.compat not in COMPAT_MODES:
            raise ValueError(f"model.compat must be one of {COMPAT_MODES}, got {self.compat!r}")


COMPAT_MODES = ("ours", "public")

# Inclusive bounds of every numeric field of ModelConfig (per entry for tuples). They are generous (the paper
# model uses dim 48, ffn 2.66, 11 experts) and exist so that a configuration read from a file (a checkpoint's
# metadata, a user's TOML) cannot ask for an absurd model: ffn_expansion_factor = 1e7 in a 1.7 KB file would
# otherwise make the builder allocate gigabytes before any weight is compared.
MODEL_BOUNDS: dict[str, tuple[float, float]] = {
    "in_channels": (1, 16), "out_channels": (1, 16), "dim": (1, 1024), "num_blocks": (0, 64),
    "num_refinement_blocks": (0, 64), "heads": (1, 64), "ffn_expansion_factor": (0.01, 16.0),
    "prompt_len": (1, 64), "prompt_dims": (1, 4096), "prompt_sizes": (1, 512), "atom_num": (1, 1024),
    "atom_dim": (1, 4096), "condnet_hidden": (1, 1024), "condnet_out": (1, 1024), "moe_levels": (1, 3),
    "moe_experts": (1, 64), "moe_top_k": (1, 64), "fusion_experts": (1, 64), "fusion_top_k": (1, 64),
    "fusion_blocks": (0, 64), "fusion_refinement_blocks": (0, 64), "fusion_weight_init": (-1e3, 1e3),
    "restored_weight_init": (-1e3, 1e3),
}
# The largest model a configuration may describe (the paper model has 40.0M parameters).
MAX_PARAMETERS = 1_000_000_000


def _check_types_and_bounds(cfg: ModelConfig) -> None:
    """Type and range of every field of ``cfg`` (``ValueError`` naming the field)."""
    import math

    for f in dataclasses.fields(cfg):
        value, default = getattr(cfg, f.name), f.default
        where = f"model.{f.name}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{where} must be true or false, got {value!r}")
            continue
        if isinstance(default, str):
            if not isinstance(value, str):
                raise ValueError(f"{where} must be a string, got {value!r}")
            continue
        entries = value if isinstance(default, tuple) else (value,)
        if isinstance(default, tuple) and not isinstance(value, tuple):
            raise ValueError(f"{where} must be a list of integers, got {value!r}")
        want_int = isinstance(default, tuple) or isinstance(default, int)
        lo, hi = MODEL_BOUNDS.get(f.name, (-math.inf, math.inf))
        for v in entries:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (want_int and not isinstance(v, int)):
                raise ValueError(f"{where} must be {'an integer' if want_int else 'a number'}, got {v!r}")
            if not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"{where} = {v!r} is outside the allowed range [{lo:g}, {hi:g}]")


@dataclass(frozen=True)
class StageConfig:
    """Training hyper-parameters of one stage.

    Loss weights: stage 1 uses ``w_l1 * L1(R, clean) + w_grad * L1(Sobel R, Sobel clean) + w_balance * B``;
    stage 2 uses ``w_vis * L1(F, V) + w_ir * L1(F, I) + w_max * L1(F, max(V, I))
    + w_grad * L1(Sobel F, max(Sobel V, Sobel I)) + w_balance * B`` (``V, I`` the clean sources).
    The learning rate follows a linear warm-up over ``warmup_epochs`` then a cosine decay that would reach
    ``min_lr`` at ``schedule_epochs`` (the public code's 5 / 180 with 40 training epochs), evaluated per
    optimizer step. The schedule never ends before the run: a run longer than ``schedule_epochs`` (e.g.
    ``--epochs 5`` with a 3-epoch schedule) stretches the cosine to the run's length instead of training at
    ``min_lr``.

    Step-defined schedules (``paper-1gpu``): ``max_steps > 0`` makes the run length a number of optimizer steps
    (the epochs needed to reach it, ``epochs`` ignored), and ``warmup_steps``/``schedule_steps > 0`` replace the
    epoch-based warm-up and cosine length. ``accum_steps`` micro-batches of ``batch_size`` are accumulated per
    optimizer step (global batch ``batch_size * accum_steps * processes``); ``steps_per_epoch`` counts
    optimizer steps.
    """

    epochs: int = 40
    batch_size: int = 7
    patch_size: int = 128
    lr: float = 1e-4
    min_lr: float = 0.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 5.0
    schedule_epochs: float = 180.0
    steps_per_epoch: int = 0  # optimizer steps per epoch; 0: one full pass over the (per-process) data
    accum_steps: int = 1  # micro-batches accumulated per optimizer step
    max_steps: int = 0  # > 0: run length in optimizer steps (overrides epochs)
    warmup_steps: int = 0  # > 0: warm-up length in optimizer steps (overrides warmup_epochs)
    schedule_steps: int = 0  # > 0: cosine length in optimizer steps (overrides schedule_epochs)
    grad_clip: float = 0.0  # 0: no clipping
    w_l1: float = 1.0
    w_vis: float = 1.0
    w_ir: float = 1.0
    w_max: float = 1.0
    w_grad: float = 10.0
    w_balance: float = 0.1
    num_workers: int = 2
    augment: bool = True
    settings: tuple[str, ...] = ()  # restrict to these settings (empty: all)
    save_every: int = 1  # also keep epoch_<n>.pt every this many epochs (last.pt is always written)
    log_every: int = 1  # steps between step-log rows
    seed: int = 0
    # "": the stored benchmark's degraded arrays; "epoch": fresh draws per (seed, epoch, item) (DeMMIDataset resample)
    resample: str = ""


@dataclass(frozen=True)
class TGConfig:
    """A named configuration: the model and both training stages."""

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=StageConfig)

    def stage(self, n: int) -> StageConfig:
        """The :class:`StageConfig` of stage ``n`` (1 or 2)."""
        if n not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {n}")
        return self.stage1 if n == 1 else self.stage2

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists, numbers, strings), as stored in checkpoints and ``config.json``."""
        return _plain(dataclasses.asdict(self))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in table.items():
        default = names[key].default
        kwargs[key] = tuple(value) if isinstance(value, list) else value
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            kwargs[key] = float(value)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], where: str = "config") -> TGConfig:
    """Build a :class:`TGConfig` from plain data (a parsed TOML file, or ``TGConfig.to_dict()``)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a configuration must be a table, got {type(data).__name__}")
    unknown = sorted(set(data) - {"name", "model", "stage1", "stage2"})
    if unknown:
        raise ValueError(f"{where}: unknown table(s) {unknown}; expected name, [model], [stage1], [stage2]")
    for key in ("model", "stage1", "stage2"):
        if not isinstance(data.get(key, {}), dict):
            raise ValueError(f"{where}: [{key}] must be a table")
    model = _build(ModelConfig, data.get("model", {}), f"{where} [model]")
    try:
        model.validate()
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    stages = []
    for key in ("stage1", "stage2"):
        st = _build(StageConfig, data.get(key, {}), f"{where} [{key}]")
        for name in ("epochs", "batch_size", "accum_steps"):
            v = getattr(st, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{where} [{key}]: {name} must be a positive integer, got {v!r}")
        if st.resample not in ("", "epoch"):
            raise ValueError(f"{where} [{key}]: resample must be \"\" or \"epoch\", got {st.resample!r}")
        for name in ("max_steps", "warmup_steps", "schedule_steps", "steps_per_epoch"):
            v = getattr(st, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{where} [{key}]: {name} must be a non-negative integer, got {v!r}")
        stages.append(st)
    return TGConfig(name=str(data.get("name", "custom")), model=model, stage1=stages[0], stage2=stages[1])


def available_configs() -> list[str]:
    """Names of the configurations shipped with the package."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def load_config(name_or_path: str | Path) -> TGConfig:
    """Load a shipped configuration by name (``paper``, ``small``, ``tiny``) or a TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix and (CONFIG_DIR / f"{name_or_path}.toml").is_file():
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise FileNotFoundError(
            f"no TG-ECNet configuration {str(name_or_path)!r}: not a file, and not one of {available_configs()}"
        )
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    data.setdefault("name", path.stem)
    try:
        return config_from_dict(data, where=str(path))
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def with_overrides(cfg: TGConfig, stage: int, **overrides: Any) -> TGConfig:
    """A copy of ``cfg`` with some fields of stage ``stage`` replaced (``None`` values are ignored)."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return cfg
    new_stage = dataclasses.replace(cfg.stage(stage), **changes)
    return dataclasses.replace(cfg, **{f"stage{stage}": new_stage})
