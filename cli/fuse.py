"""``demmi fuse``: fuse images with a TG-ECNet stage-2 checkpoint."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True,
              help="Stage-2 last.pt / epoch_*.pt / model.safetensors, or the authors' public "
                   "stage2_pretrained.ckpt (read without executing anything in it).")
@click.option("--config", "config", default=None,
              help="Public .ckpt only: the configuration of its widths (default: paper).")
@click.option("--compat", type=click.Choice(["ours", "public"]), default=None,
              help="Stage-2 forward: 'public' bypasses the restorer's level-1 MoE as the authors' stage-2 code "
                   "(default: public for their .ckpt, ours otherwise).")
@click.option("--dataset", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Dataset folder written by 'demmi build'.")
@click.option("--split", default="test", show_default=True, help="Split to fuse ('all': every split).")
@click.option("--degradations", "--settings", "settings", metavar="LIST",
              help="Comma-separated settings to fuse (default: every setting of the split).")
@click.option("--limit", type=click.IntRange(1), help="Fuse only the first N samples.")
@click.option("--ir", "ir_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="One IR image (with --vis) instead of --dataset.")
@click.option("--vis", "vis_path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output folder (<safe sample id>.png per sample), or a .png path with --ir/--vis.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--amp/--no-amp", default=None, help="bfloat16 autocast (default: on for CUDA, off for CPU).")
@click.option("--tf32/--no-tf32", default=True, show_default=True, help="CUDA: TF32 for fp32 matmuls/convolutions.")
@click.option("--channels-last", is_flag=True,
              help="Channels-last memory format (faster depthwise convolutions; float-rounding differences).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (one compilation per image size).")
@click.option("--tile", type=click.IntRange(0), default=0, show_default=True,
              help="Process in tiles of this size (multiple of 8); 0: whole images, padded to multiples of 8.")
@click.option("--overlap", type=click.IntRange(0), default=32, show_default=True)
@click.option("--color", type=click.Choice(["auto", "gray"]), default="auto", show_default=True,
              help="auto: RGB output for RGB input, recoloured with the degraded input's smoothed chroma.")
@click.option("--chroma-sigma", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Gaussian sigma (pixels) smoothing the degraded input's chroma.")
@click.option("--fast/--no-fast", default=True, show_default=True,
              help="CPU inference fast path (equal to the reference path up to float rounding; docs/tgecnet.md).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def fuse(checkpoint: Path, config: str | None, compat: str | None, dataset: Path | None, split: str,
         settings: str | None, limit: int | None, ir_path: Path | None, vis_path: Path | None, out: Path,
         device: str, amp: bool | None, tf32: bool, channels_last: bool, compile_: bool, tile: int, overlap: int,
         color: str, chroma_sigma: float, fast: bool, progress: bool) -> None:
    """Write fused images in the layout 'demmi eval' reads."""
    from demmi_rf.errors import DemmiError
    from demmi_rf.optional import require

    single = ir_path is not None or vis_path is not None
    if single and (ir_path is None or vis_path is None):
        raise click.UsageError("--ir and --vis go together")
    if single == (dataset is not None):
        raise click.UsageError("give either --dataset DIR or --ir A.png --vis B.png")
    try:
        require("torch", feature="demmi fuse")
        if checkpoint.suffix == ".safetensors":
            require("safetensors", feature=f"demmi fuse {checkpoint.name}")
        from demmi_rf.progress import progress as reporter
        from tgecnet_ref.infer import Fuser, fuse_dataset, fuse_files

        fuser = Fuser(checkpoint, device=device, amp=amp, tile=tile, overlap=overlap, chroma_sigma=chroma_sigma,
                      config=config, compat=compat, tf32=tf32, channels_last=channels_last, compile=compile_,
                      fast=fast)
        if fuser.note:
            click.echo(fuser.note, err=True)
        if single:
            path = fuse_files(fuser, ir_path, vis_path, out, color=color)
            click.echo(f"wrote {path}")
            return
        names = [s.strip() for s in settings.split(",") if s.strip()] if settings else None
        with reporter(limit, "fuse", unit="images", mode=progress) as bar:
            written = fuse_dataset(fuser, dataset, out, split=None if split == "all" else split, settings=names,
                                   limit=limit, color=color, on_item=lambda _sid: bar.advance(1),
                                   on_total=lambda n: setattr(bar, "total", n))
    except (DemmiError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {len(written)} fused image(s) to {out}")
