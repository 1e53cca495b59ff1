"""``demmi train``: train the reference TG-ECNet (stage 1 restoration, stage 2 fusion)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset", type=click.Path(path_type=Path, file_okay=False),
              help="Dataset folder written by 'demmi build' (its train split is used).")
@click.option("--stage", type=click.IntRange(1, 2), required=True, help="1: restoration; 2: fusion.")
@click.option("--config", "config", default="paper", show_default=True,
              help="Shipped configuration (paper, small, tiny) or a TOML file.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Run folder (checkpoints, logs, config.json).")
@click.option("--init", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Stage 2: the stage-1 checkpoint to start from (last.pt, model.safetensors, or the authors' "
                   "stage1.pth / stage1_pretrained.ckpt with --config paper); it is frozen.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--amp/--no-amp", default=None, help="bfloat16 autocast (default: on for CUDA, off for CPU).")
@click.option("--tf32/--no-tf32", default=True, show_default=True, help="CUDA: TF32 for fp32 matmuls/convolutions.")
@click.option("--channels-last", is_flag=True, help="Keep the model in channels-last memory format.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the trained module (use moe_dispatch = \"dense\" for a graph without breaks).")
@click.option("--tensorboard", is_flag=True, help="Also log to <out>/tensorboard (needs the tensorboard package).")
@click.option("--dry-run", is_flag=True, help="Print the configuration and parameter counts, train nothing.")
@click.option("--epochs", type=click.IntRange(1), help="Override the stage's epochs.")
@click.option("--steps-per-epoch", type=click.IntRange(0), help="Override: at most this many steps per epoch.")
@click.option("--batch-size", type=click.IntRange(1), help="Override the batch size per process.")
@click.option("--patch-size", type=click.IntRange(16), help="Override the crop size.")
@click.option("--workers", "num_workers", type=click.IntRange(0), help="Override DataLoader workers.")
@click.option("--accum-steps", type=click.IntRange(1), help="Override: micro-batches per optimizer step.")
@click.option("--max-steps", type=click.IntRange(1), help="Override: run length in optimizer steps.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True),
              help="Wall-clock budget: end the epoch in which it runs out early, save, and stop.")
@click.option("--resample", type=click.Choice(["epoch"]), default=None,
              help="Fresh degradations every epoch (new parameters and noise per seed, epoch and item; train split "
                   "only; docs/training.md). Default: the stored benchmark's arrays.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(dataset: Path | None, stage: int, config: str, out: Path, init: Path | None, resume: bool, device: str,
          amp: bool | None, tf32: bool, channels_last: bool, compile_: bool, tensorboard: bool, dry_run: bool,
          epochs: int | None, steps_per_epoch: int | None, batch_size: int | None, patch_size: int | None,
          num_workers: int | None, accum_steps: int | None, max_steps: int | None, max_minutes: float | None,
          resample: str | None, progress: bool) -> None:
    """Train TG-ECNet on a built DeMMI-RF dataset (multi-GPU: launch with torchrun).

    Off a terminal (or with --no-progress) one line per epoch reports the loss terms, lr, items/s and ETA."""
    from demmi_rf.errors import DemmiError
    from demmi_rf.optional import require

    try:
        require("torch", feature="demmi train")
        if not dry_run:
            require("safetensors", feature="demmi train (writes model.safetensors at the end of the run)")
    except DemmiError as exc:
        raise click.ClickException(str(exc)) from exc
    from tgecnet_ref.train import TrainOptions
    from tgecnet_ref.train import train as run

    if dataset is None and not dry_run:
        raise click.UsageError("--dataset is required (unless --dry-run)")
    if stage == 1 and init is not None:
        raise click.UsageError("--init is for stage 2 (stage 1 starts from scratch)")
    if stage == 2 and init is None and not resume and not dry_run:
        raise click.UsageError("stage 2 needs --init STAGE1_CHECKPOINT")
    cfg: object = config
    if resample is not None:  # a stage-configuration value: applied here, recorded in config.json like the others
        from tgecnet_ref.config import load_config, with_overrides

        try:
            cfg = with_overrides(load_config(config), stage, resample=resample)
        except (DemmiError, FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    opts = TrainOptions(dataset=dataset, stage=stage, out=out, config=cfg, init=init, resume=resume,
                        device=device, amp=amp, dry_run=dry_run, progress=progress, epochs=epochs,
                        steps_per_epoch=steps_per_epoch, batch_size=batch_size, patch_size=patch_size,
                        num_workers=num_workers, accum_steps=accum_steps, max_steps=max_steps, tf32=tf32,
                        channels_last=channels_last, compile=compile_, tensorboard=tensorboard, echo=click.echo,
                        max_seconds=None if max_minutes is None else 60.0 * max_minutes)
    try:
        result = run(opts)
    except (DemmiError, FileExistsError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not dry_run and result.checkpoint is not None:
        last = result.history[-1] if result.history else {}
        loss = f"; last epoch loss {last['loss']:.4f}" if "loss" in last else ""
        click.echo(f"stage {stage}: {result.epochs} epoch(s), {result.steps} step(s){loss}; "
                   f"checkpoint {result.checkpoint}")
