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
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from demmi_rf.progress import format_duration, progress

from ..config import ModelConfig, TGConfig, load_config, with_overrides
from ..losses import fusion_loss, restoration_loss
from ..model import TGECNet, parameter_summary
from ..model.layers import to_channels_last
from .checkpoint import (
    CheckpointError,
    checked_config,
    export_safetensors,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .data import make_dataset, make_loader, stage1_batch, stage2_batch
from .distributed import DistEnv, barrier, env_from_os, gather_objects, mean_over_ranks, setup, teardown
from .logs import RunLog
from .schedule import make_step_scheduler

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
    amp: bool | None = None  # bfloat16 autocast; None: on for CUDA, off for CPU
    dry_run: bool = False
    progress: bool | str = True  # True: bar on a terminal, log lines off one; False: epoch lines only; "off"
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    patch_size: int | None = None
    num_workers: int | None = None
    accum_steps: int | None = None
    max_steps: int | None = None
    max_seconds: float | None = None  # wall-clock budget: the epoch in which it runs out ends early, then stop
    tf32: bool = True  # CUDA: TF32 tensor cores for fp32 matmuls and convolutions
    channels_last: bool = False
    compile: bool = False  # torch.compile the trained module (dense MoE dispatch traces without graph breaks)
    tensorboard: bool = False  # also log scalars to <out>/tensorboard (needs the tensorboard package)
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
                          batch_size=opts.batch_size, patch_size=opts.patch_size, num_workers=opts.num_workers,
                          accum_steps=opts.accum_steps, max_steps=opts.max_steps)


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
        f"  {'epochs ' + str(s.epochs) if not s.max_steps else str(s.max_steps) + ' optimizer steps'}, batch "
        f"{s.batch_size}/process, patch {s.patch_size}, AdamW lr {s.lr:g} (wd {s.weight_decay:g}), warm-up "
        f"{str(s.warmup_steps) + ' steps' if s.warmup_steps else format(s.warmup_epochs, 'g') + ' ep'}, cosine to "
        f"{str(s.schedule_steps) + ' steps' if s.schedule_steps else format(s.schedule_epochs, 'g') + ' ep'}",
    ]
    if s.accum_steps > 1:
        lines.append(f"  {s.accum_steps} micro-batches per optimizer step: global batch {s.batch_size} x "
                     f"{s.accum_steps} x processes")
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
    from demmi_rf.optional import require

    # the run ends by exporting model.safetensors: refuse now, not after hours of training
    require("safetensors", feature="demmi train (writes model.safetensors at the end of the run)")
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
            stored = checked_config(ckpt, last)
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
        from ..weights import is_public_path, load_weights

        init = Path(self.opts.init)
        # a public file has no configuration of its own: it is checked against --config (paper widths)
        weights = load_weights(init, config=self.cfg if is_public_path(init) else None)
        stored = weights.config
        if dataclasses.replace(stored.model, compat="ours") != dataclasses.replace(self.cfg.model, compat="ours"):
            diff = [k for k, v in vars(self.cfg.model).items() if getattr(stored.model, k) != v and k != "compat"]
            raise CheckpointError(f"--init {init}: its model configuration ('{stored.name}') differs "
                                  f"from --config '{self.cfg.name}' in {diff}")
        state = weights.restorer_state()
        if not state:
            raise CheckpointError(f"{init}: holds no restorer (stage-1) weights")
        model.restorer.load_state_dict(state, strict=True)
        if weights.note and self.env.is_main:
            self.opts.echo(weights.note)

    def _schedule(self, loader_batches: int) -> tuple[int, int, int, int]:
        """``(optimizer steps per epoch, epochs, warm-up steps, cosine length in steps)`` of this run.

        The cosine never ends before the run (``total = max(schedule, run length)``): a run longer than the
        configured schedule stretches it instead of training at ``min_lr`` for its last epochs."""
        s = self.scfg
        per_epoch = loader_batches // s.accum_steps
        if s.steps_per_epoch > 0:
            per_epoch = min(per_epoch, s.steps_per_epoch)
        if per_epoch == 0:
            return 0, 0, 0, 0
        epochs = -(-s.max_steps // per_epoch) if s.max_steps > 0 else s.epochs
        run_steps = s.max_steps if s.max_steps > 0 else epochs * per_epoch
        warmup = s.warmup_steps if s.warmup_steps > 0 else int(round(s.warmup_epochs * per_epoch))
        total = s.schedule_steps if s.schedule_steps > 0 else int(round(s.schedule_epochs * per_epoch))
        if run_steps > total and self.env.is_main:
            self.opts.echo(f"note: the run ({run_steps} optimizer steps) is longer than the configured schedule "
                           f"({total} steps); the cosine is stretched to the run's length")
        return per_epoch, epochs, warmup, max(total, run_steps)

    def _cuda_options(self) -> None:
        if self.device.type != "cuda":
            return
        torch.backends.cuda.matmul.allow_tf32 = self.opts.tf32
        torch.backends.cudnn.allow_tf32 = self.opts.tf32
        torch.backends.cudnn.benchmark = True  # fixed patch size: pick the fastest convolution once

    def _tensorboard(self) -> Any:
        if not self.opts.tensorboard or not self.env.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.opts.echo("TensorBoard logging needs the 'tensorboard' package (pip install tensorboard); "
                           "training goes on with the CSV/JSONL logs only")
            return None
        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    # -- main -------------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        opts, scfg, env, device = self.opts, self.scfg, self.env, self.device
        ckpt = self._prepare_dir()
        barrier(env)
        self._cuda_options()
        torch.manual_seed(scfg.seed)
        model = build_model(self.cfg, self.stage)
        if self.stage == 2 and ckpt is None:
            self._load_init(model)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
        model.to(device)
        if opts.channels_last:
            to_channels_last(model)
        if self.stage == 2:
            model.freeze_restorer()
        module = model.restorer if self.stage == 1 else model
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=scfg.lr, betas=tuple(scfg.betas), weight_decay=scfg.weight_decay)

        dataset = _dataset(opts, self.cfg)
        loader, sampler = make_loader(dataset, scfg, env, pin_memory=device.type == "cuda")
        spe, epochs, warmup, total = self._schedule(len(loader))
        if spe == 0:
            raise ValueError(f"{len(dataset)} training items over {env.world_size} process(es) make no optimizer "
                             f"step of {scfg.accum_steps} batch(es) of {scfg.batch_size}; lower the batch size")
        scheduler = make_step_scheduler(optimizer, warmup, total, scfg.lr, scfg.min_lr)

        ddp: DistributedDataParallel | None = None
        net: Any = module
        if env.distributed:
            ddp = DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None,
                                          find_unused_parameters=not self.cfg.model.moe_noisy)
            net = ddp
        if opts.compile:
            net = torch.compile(net)
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
        tb = self._tensorboard()
        if env.is_main:
            step_log, epoch_log = RunLog(self.run_dir, "steps"), RunLog(self.run_dir, "epochs")
            if ckpt is not None:
                step_log.truncate_after(start_epoch - 1)
                epoch_log.truncate_after(start_epoch - 1)
            else:
                (self.run_dir / "config.json").write_text(json.dumps(
                    {"stage": self.stage, "init": str(opts.init) if opts.init else None, "world_size": env.world_size,
                     "config": self.cfg.to_dict()}, indent=2))
        use_amp = opts.amp if opts.amp is not None else device.type == "cuda"
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
        history: list[dict[str, float]] = []
        last_path: Path | None = self.run_dir / "last.pt" if ckpt is not None else None
        accum = scfg.accum_steps
        items_per_step = scfg.batch_size * accum * env.world_size
        run_steps = scfg.max_steps if scfg.max_steps > 0 else epochs * spe

        t_start = time.perf_counter()
        epochs_done = start_epoch
        out_of_time = False
        mode: Any = opts.progress if isinstance(opts.progress, str) else ("auto" if opts.progress else "log")
        bar = progress(run_steps, f"stage {self.stage}", unit="steps", mode=mode if env.is_main else "off",
                       log_every_s=30.0 if opts.progress else float("inf"))
        bar.done = step
        steps_at_start = step
        for epoch in range(start_epoch, epochs):
            if step >= run_steps:
                break
            sampler.set_epoch(epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            net.train()
            model.train()
            keys: list[str] = []
            lr = optimizer.param_groups[0]["lr"]
            sums: torch.Tensor | None = None
            n_done = 0
            t0 = time.perf_counter()
            batches = iter(loader)
            for i in range(spe):
                if step >= run_steps:
                    break
                ts = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                acc: torch.Tensor | None = None
                for m in range(accum):
                    batch = next(batches)
                    last_micro = m == accum - 1
                    sync = contextlib.nullcontext() if (ddp is None or last_micro) else ddp.no_sync()
                    with sync:
                        losses = self._step(net, batch, amp)
                        (losses["loss"] / accum if accum > 1 else losses["loss"]).backward()
                    keys = keys or list(losses)
                    vals = torch.stack([v.detach().float() for v in losses.values()])
                    acc = vals if acc is None else acc + vals
                assert acc is not None
                acc = acc / accum  # the step's mean losses (stay on the device: no host sync per step)
                if scfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, scfg.grad_clip)
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                step += 1
                sums = acc if sums is None else sums + acc
                n_done += 1
                bar.advance(1)
                if step % max(1, scfg.log_every) == 0 or i == spe - 1:
                    values = dict(zip(keys, acc.tolist()))  # host sync only on logged steps
                    _check_finite(values, self.stage, epoch, step)
                    bar.set_postfix(f"loss {values['loss']:.4f}")
                    if step_log is not None:
                        dt = time.perf_counter() - ts
                        step_log.write({"epoch": epoch, "step": step, "lr": lr, **values,
                                        "images_per_s": items_per_step / max(dt, 1e-9)})
                    if tb is not None:
                        for k, v in values.items():
                            tb.add_scalar(f"stage{self.stage}/step/{k}", v, step)
                        tb.add_scalar(f"stage{self.stage}/step/lr", lr, step)
                if opts.max_seconds is not None:
                    out_of_time = _agree(time.perf_counter() - t_start > opts.max_seconds, env, device)
                    if out_of_time:
                        break
            epoch_means = {k: v / max(1, n_done) for k, v in zip(keys, sums.tolist())} if sums is not None else {}
            _check_finite(epoch_means, self.stage, epoch, step)
            means = mean_over_ranks(epoch_means, env, device)
            history.append(means)
            rngs = gather_objects(rng_state(), env)
            seconds = time.perf_counter() - t0
            if env.is_main:
                assert epoch_log is not None
                lr_now = lr if n_done else optimizer.param_groups[0]["lr"]  # the rate of the epoch's last step
                epoch_log.write({"epoch": epoch, "step": step, **means, "lr": lr_now, "seconds": seconds,
                                 "steps": n_done, "images_per_s": n_done * items_per_step / max(seconds, 1e-9)})
                bar.log(_epoch_line(self.stage, epoch, epochs, means, lr_now, n_done * items_per_step, seconds,
                                    time.perf_counter() - t_start, step - steps_at_start, run_steps - step))
                if tb is not None:
                    for k, v in means.items():
                        tb.add_scalar(f"stage{self.stage}/epoch/{k}", v, epoch + 1)
                    tb.flush()
                payload = {"stage": self.stage, "epoch": epoch + 1, "step": step, "config": self.cfg.to_dict(),
                           "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "rng": rngs,
                           "init": str(opts.init) if opts.init else None}
                last_path = save_checkpoint(self.run_dir / "last.pt", payload)
                if (epoch + 1) % max(1, scfg.save_every) == 0 or epoch + 1 == epochs:
                    shutil.copyfile(last_path, self.run_dir / f"epoch_{epoch + 1:04d}.pt")
            barrier(env)
            epochs_done = epoch + 1
            if out_of_time:
                break
        bar.close()
        if tb is not None:
            tb.close()
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


def _check_finite(values: dict[str, float], stage: int, epoch: int, step: int) -> None:
    if not all(v == v and abs(v) != float("inf") for v in values.values()):
        raise FloatingPointError(f"stage {stage}: non-finite loss {values} at epoch {epoch + 1}, step {step}; "
                                 "lower the learning rate or check the data")


def _epoch_line(stage: int, epoch: int, epochs: int, means: dict[str, float], lr: float, items: int,
                seconds: float, elapsed: float, steps_done: int, steps_left: int) -> str:
    """``stage 1 epoch 3/40: loss 0.1234 (l1 0.1, grad 0.002, balance 0.3), lr 9.5e-05, 45.2 items/s,
    epoch 0:01:02, ETA 0:40:00`` (ETA: steps left at this run's mean seconds per step so far)."""
    terms = ", ".join(f"{k} {v:.4g}" for k, v in means.items() if k != "loss")
    loss = f"loss {means['loss']:.4f} ({terms})" if "loss" in means else "no step"
    eta = steps_left * elapsed / steps_done if steps_done else float("nan")
    return (f"stage {stage} epoch {epoch + 1}/{epochs}: {loss}, lr {lr:.3g}, {items / max(seconds, 1e-9):.3g} "
            f"items/s, epoch {format_duration(seconds)}, ETA {format_duration(eta)}")
