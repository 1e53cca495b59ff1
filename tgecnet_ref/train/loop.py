"""The two-stage training loop of TG-ECNet (``demmi train``).

One function, :func:`train`, runs stage 1 or 2 in this process; under ``torchrun`` every process runs it and
they train one model with DistributedDataParallel. Per epoch it writes ``last.pt`` (model, optimizer,
scheduler, epoch, step and every process's RNG state), and ``epoch_<n>.pt`` every ``save_every`` epochs; at the
end ``model.safetensors``. ``--resume`` continues from ``last.pt``; on CPU the continuation is bit-for-bit
the run that never stopped (the data order and crops are functions of seed and epoch, the gating noise comes
from the restored RNG).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from ..config import ModelConfig, TGConfig, load_config, with_overrides
from ..losses import fusion_loss, restoration_loss
from ..model import TGECNet, parameter_summary
from .checkpoint import (
    CheckpointError,
    checkpoint_config,
    export_safetensors,
    load_checkpoint,
    restorer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .data import make_dataset, make_loader, stage1_batch, stage2_batch
from .distributed import DistEnv, barrier, env_from_os, gather_objects, mean_over_ranks, setup, teardown
from .logs import RunLog
from .schedule import make_scheduler

# chnl_reduce1-3 and reduce_noise_channel_1-3 of the public code (paper widths): defined, never called
PUBLIC_UNUSED = 64 * 64 + 128 * 128 + 320 * 256 + (48 + 64) * 48 + (96 + 128) * 96 + (192 + 256) * 192


@dataclass
class TrainOptions:
    """What ``demmi train`` asks for. ``dataset`` is a ``demmi build`` directory or a ready ``Dataset``
    (items as ``DeMMIDataset``'s). Overrides (``epochs`` ...) replace the stage's configuration values."""

    dataset: str | Path | Dataset | None
    stage: int
    out: str | Path
    config: str | Path | TGConfig = "paper"
    init: str | Path | None = None
    resume: bool = False
    device: str = "auto"
    amp: bool = False
    dry_run: bool = False
    progress: bool = True
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    patch_size: int | None = None
    num_workers: int | None = None
    max_seconds: float | None = None  # wall-clock budget: the epoch in which it runs out ends early, then stop
    echo: Callable[[str], None] = print


@dataclass
class TrainResult:
    """What a run did (``epochs`` completed in total, ``history`` one dict of mean losses per epoch run here)."""

    run_dir: Path
    stage: int
    epochs: int
    steps: int
    checkpoint: Path | None
    parameters: dict[str, int]
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_config(opts: TrainOptions) -> TGConfig:
    """The configuration with the command-line overrides applied to the chosen stage."""
    cfg = opts.config if isinstance(opts.config, TGConfig) else load_config(opts.config)
    return with_overrides(cfg, opts.stage, epochs=opts.epochs, steps_per_epoch=opts.steps_per_epoch,
                          batch_size=opts.batch_size, patch_size=opts.patch_size, num_workers=opts.num_workers)


def build_model(cfg: TGConfig, stage: int) -> TGECNet:
    """A fresh model for ``stage`` (stage 2: restorer frozen)."""
    model = TGECNet(cfg.model)
    if stage == 2:
        model.freeze_restorer()
    return model


def describe(cfg: TGConfig, stage: int, model: TGECNet) -> str:
    """The ``--dry-run`` report: configuration, stage hyper-parameters and parameter counts."""
    p = parameter_summary(model)
    s = cfg.stage(stage)
    trainable = p["stage1"] if stage == 1 else p["trainable"]
    lines = [
        f"TG-ECNet configuration '{cfg.name}', stage {stage}",
        f"  parameters: stage 1 (restorer) {p['stage1']:,} ({p['stage1'] / 1e6:.2f}M); "
        f"fusion head {p['fusion']:,} ({p['fusion'] / 1e6:.2f}M); total {p['total']:,} ({p['total'] / 1e6:.2f}M)",
        f"  trainable in stage {stage}: {trainable:,} ({trainable / 1e6:.2f}M)",
        f"  epochs {s.epochs}, batch {s.batch_size}/process, patch {s.patch_size}, AdamW lr {s.lr:g} "
        f"(wd {s.weight_decay:g}), warm-up {s.warmup_epochs:g} ep, cosine to {s.schedule_epochs:g} ep",
    ]
    if cfg.model == ModelConfig():
        lines.append(f"  (the public code's counts, {(p['stage1'] + PUBLIC_UNUSED) / 1e6:.1f}M / "
                     f"{(p['total'] + PUBLIC_UNUSED) / 1e6:.1f}M, add {PUBLIC_UNUSED:,} parameters of six 1x1 "
                     "convolutions it defines but never calls)")
    if stage == 1:
        lines.append(f"  loss = {s.w_l1:g}*L1 + {s.w_grad:g}*L1(Sobel) + {s.w_balance:g}*balance")
    else:
        lines.append(f"  loss = {s.w_vis:g}*L1(F,V) + {s.w_ir:g}*L1(F,I) + {s.w_max:g}*L1(F,max) + "
                     f"{s.w_grad:g}*L1(Sobel F, max Sobel) + {s.w_balance:g}*balance")
    return "\n".join(lines)


def train(opts: TrainOptions) -> TrainResult:
    """Run one training stage (see the module docstring). Raises ``ValueError``/``CheckpointError`` with the
    file and the problem for bad inputs."""
    if opts.stage not in (1, 2):
        raise ValueError(f"--stage must be 1 or 2, got {opts.stage}")
    cfg = resolve_config(opts)
    if opts.dry_run:
        model = build_model(cfg, opts.stage)
        text = describe(cfg, opts.stage, model)
        if opts.dataset is not None:
            ds = _dataset(opts, cfg)
            text += f"\n  dataset: {len(ds)} training items"
        opts.echo(text)
        return TrainResult(Path(opts.out), opts.stage, 0, 0, None, parameter_summary(model))
    env = env_from_os()
    device_name = opts.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    started = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    device = setup(env, device_name)
    try:
        return _Run(opts, cfg, env, device).run()
    finally:
        if started:
            teardown()


def _dataset(opts: TrainOptions, cfg: TGConfig) -> Dataset:
    if opts.dataset is None:
        raise ValueError("--dataset is required (a directory written by 'demmi build')")
    if isinstance(opts.dataset, Dataset):
        return opts.dataset
    return make_dataset(opts.dataset, opts.stage, cfg.stage(opts.stage))


class _Run:
    def __init__(self, opts: TrainOptions, cfg: TGConfig, env: DistEnv, device: torch.device) -> None:
        self.opts, self.cfg, self.env, self.device = opts, cfg, env, device
        self.stage = opts.stage
        self.scfg = cfg.stage(opts.stage)
        self.run_dir = Path(opts.out)

    # -- setup ------------------------------------------------------------------------------------------------
    def _prepare_dir(self) -> dict[str, Any] | None:
        last = self.run_dir / "last.pt"
        if self.opts.resume:
            if not last.is_file():
                raise CheckpointError(f"--resume: {last} does not exist (nothing to resume)")
            ckpt = load_checkpoint(last)
            if int(ckpt.get("stage", 0)) != self.stage:
                raise CheckpointError(f"--resume: {last} is a stage-{ckpt.get('stage')} run, not stage {self.stage}")
            stored = checkpoint_config(ckpt, last)
            if stored.model != self.cfg.model:
                raise CheckpointError(f"--resume: {last} was trained with another model configuration "
                                      f"('{stored.name}'); resume with the same --config")
            return ckpt
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise FileExistsError(f"{self.run_dir} exists and is not empty; pass --resume to continue that run "
                                  "or choose another --out")
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        return None

    def _load_init(self, model: TGECNet) -> None:
        if self.opts.init is None:
            raise ValueError("stage 2 needs --init STAGE1_CHECKPOINT (the stage-1 run's last.pt or model.safetensors)")
        ckpt = load_checkpoint(self.opts.init)
        stored = checkpoint_config(ckpt, self.opts.init)
        if stored.model != self.cfg.model:
            diff = [k for k, v in vars(self.cfg.model).items() if getattr(stored.model, k) != v]
            raise CheckpointError(f"--init {self.opts.init}: its model configuration ('{stored.name}') differs "
                                  f"from --config '{self.cfg.name}' in {diff}")
        model.restorer.load_state_dict(restorer_state(ckpt, self.opts.init), strict=True)

    # -- main -------------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        opts, scfg, env, device = self.opts, self.scfg, self.env, self.device
        ckpt = self._prepare_dir()
        barrier(env)
        torch.manual_seed(scfg.seed)
        model = build_model(self.cfg, self.stage)
        if self.stage == 2 and ckpt is None:
            self._load_init(model)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
        model.to(device)
        if self.stage == 2:
            model.freeze_restorer()
        module = model.restorer if self.stage == 1 else model
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=scfg.lr, betas=tuple(scfg.betas), weight_decay=scfg.weight_decay)

        dataset = _dataset(opts, self.cfg)
        loader, sampler = make_loader(dataset, scfg, env, pin_memory=device.type == "cuda")
        spe = len(loader) if scfg.steps_per_epoch <= 0 else min(len(loader), scfg.steps_per_epoch)
        if spe == 0:
            raise ValueError(f"{len(dataset)} training items over {env.world_size} process(es) make no batch of "
                             f"{scfg.batch_size}; lower the batch size")
        scheduler = make_scheduler(optimizer, spe, scfg.warmup_epochs, scfg.schedule_epochs, scfg.lr, scfg.min_lr)

        net: torch.nn.Module = module
        if env.distributed:
            net = DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None,
                                          find_unused_parameters=not self.cfg.model.moe_noisy)
        start_epoch, step = 0, 0
        if ckpt is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
            states = ckpt["rng"]
            set_rng_state(states[env.rank] if env.rank < len(states) else states[0])
        else:
            torch.manual_seed(scfg.seed + env.rank)  # rank 0 draws as a single process would

        step_log = epoch_log = None
        if env.is_main:
            step_log, epoch_log = RunLog(self.run_dir, "steps"), RunLog(self.run_dir, "epochs")
            if ckpt is not None:
                step_log.truncate_after(start_epoch - 1)
                epoch_log.truncate_after(start_epoch - 1)
            else:
                (self.run_dir / "config.json").write_text(json.dumps(
                    {"stage": self.stage, "init": str(opts.init) if opts.init else None, "world_size": env.world_size,
                     "config": self.cfg.to_dict()}, indent=2))
        amp = (torch.autocast(device.type, dtype=torch.bfloat16) if opts.amp else contextlib.nullcontext())
        history: list[dict[str, float]] = []
        last_path: Path | None = self.run_dir / "last.pt" if ckpt is not None else None

        t_start = time.perf_counter()
        epochs_done = start_epoch
        out_of_time = False
        for epoch in range(start_epoch, scfg.epochs):
            sampler.set_epoch(epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            net.train()
            model.train()
            sums: dict[str, float] = defaultdict(float)
            n_done = 0
            t0 = time.perf_counter()
            bar = _progress(spe, f"stage {self.stage} epoch {epoch + 1}/{scfg.epochs}",
                            opts.progress and env.is_main)
            for i, batch in enumerate(loader):
                if i >= spe:
                    break
                ts = time.perf_counter()
                losses = self._step(net, batch, amp)
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if scfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, scfg.grad_clip)
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                step += 1
                values = dict(zip(losses, torch.stack([v.detach().float() for v in losses.values()]).tolist()))
                if not all(v == v and abs(v) != float("inf") for v in values.values()):
                    raise FloatingPointError(f"stage {self.stage}: non-finite loss {values} at epoch {epoch + 1}, "
                                             f"step {step}; lower the learning rate or check the data")
                for k, v in values.items():
                    sums[k] += v
                n_done += 1
                if step_log is not None and (step % max(1, scfg.log_every) == 0 or i == spe - 1):
                    dt = time.perf_counter() - ts
                    step_log.write({"epoch": epoch, "step": step, "lr": lr, **values,
                                    "images_per_s": scfg.batch_size * env.world_size / max(dt, 1e-9)})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}")
                if opts.max_seconds is not None:
                    out_of_time = _agree(time.perf_counter() - t_start > opts.max_seconds, env, device)
                    if out_of_time:
                        break
            if bar is not None:
                bar.close()
            means = mean_over_ranks({k: v / max(1, n_done) for k, v in sums.items()}, env, device)
            history.append(means)
            rngs = gather_objects(rng_state(), env)
            if env.is_main:
                assert epoch_log is not None
                epoch_log.write({"epoch": epoch, "step": step, **means, "seconds": time.perf_counter() - t0,
                                 "steps": n_done})
                payload = {"stage": self.stage, "epoch": epoch + 1, "step": step, "config": self.cfg.to_dict(),
                           "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "rng": rngs,
                           "init": str(opts.init) if opts.init else None}
                last_path = save_checkpoint(self.run_dir / "last.pt", payload)
                if (epoch + 1) % max(1, scfg.save_every) == 0 or epoch + 1 == scfg.epochs:
                    shutil.copyfile(last_path, self.run_dir / f"epoch_{epoch + 1:04d}.pt")
            barrier(env)
            epochs_done = epoch + 1
            if out_of_time:
                break
        if env.distributed:
            _check_replicas_agree(module, env, device)
        if env.is_main:
            export_safetensors(self.run_dir / "model.safetensors", model.state_dict(), self.cfg, self.stage)
        barrier(env)
        return TrainResult(self.run_dir, self.stage, epochs_done, step, last_path,
                           parameter_summary(model), history)

    def _step(self, net: torch.nn.Module, batch: dict[str, Any], amp: Any) -> dict[str, torch.Tensor]:
        if self.stage == 1:
            x, y = stage1_batch(batch, self.device)
            with amp:
                out = net(x)
            return restoration_loss(out.image.float(), y, out.balance, self.scfg)
        vis, ir, vis_clean, ir_clean = stage2_batch(batch, self.device)
        with amp:
            out = net(vis, ir)
        return fusion_loss(out.fused.float(), vis_clean, ir_clean, out.balance, self.scfg)


def _agree(flag: bool, env: DistEnv, device: torch.device) -> bool:
    """True on every process when it is true on any (so that all processes stop at the same step)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def _check_replicas_agree(module: torch.nn.Module, env: DistEnv, device: torch.device) -> None:
    """Raise if the trained parameters differ between processes (DDP must keep replicas identical)."""
    with torch.no_grad():
        sums = torch.stack([p.detach().double().sum() for p in module.parameters() if p.requires_grad])
    gathered = gather_objects(sums.cpu(), env)
    if any(not torch.equal(gathered[0], g) for g in gathered[1:]):
        raise RuntimeError("distributed training: model replicas differ between processes after training")


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
