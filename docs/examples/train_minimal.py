"""Train a tiny fusion network on DeMMI-RF, then fuse the whole test images (docs/training.md).

    demmi build --out demmi-mini                  # the embedded sample pairs; add --source DIR for yours
    python docs/examples/train_minimal.py demmi-mini
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from demmi_rf.torch import DeMMIDataset, pad_collate, unpad


class TinyFusion(nn.Module):
    """Degraded VIS (gray) + degraded IR in, one fused gray image out."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(torch.cat([vis, ir], dim=1)))


def fusion_loss(fused: torch.Tensor, vis_clean: torch.Tensor, ir_clean: torch.Tensor) -> torch.Tensor:
    """L1 to the brighter clean source (a common intensity loss); the clean arrays are the targets."""
    return F.l1_loss(fused, torch.maximum(vis_clean, ir_clean))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("root", help="a dataset directory written by 'demmi build'")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)

    # training: random 128x128 crops with flips/rotations, the same for all four arrays of a sample
    train = DeMMIDataset(args.root, split="train", crop=128, augment=True, seed=0, to_gray_vis=True)
    loader = DataLoader(train, batch_size=8, shuffle=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0, drop_last=True)
    model = TinyFusion()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        train.set_epoch(epoch)  # new crops every epoch, also in persistent workers
        total, steps = 0.0, 0
        for batch in loader:
            fused = model(batch["vis"], batch["ir"])
            loss = fusion_loss(fused, batch["vis_clean"], batch["ir_clean"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        print(f"epoch {epoch}: {steps} steps, mean loss {total / max(steps, 1):.4f}")

    # test: whole images of different sizes, padded to a multiple of 8 inside a batch, cut back after
    test = DeMMIDataset(args.root, split="test", to_gray_vis=True)
    test_loader = DataLoader(test, batch_size=4, num_workers=args.workers,
                             collate_fn=partial(pad_collate, multiple=8))
    model.eval()
    errors = {}
    with torch.no_grad():
        for batch in test_loader:
            fused = unpad(model(batch["vis"], batch["ir"]), batch["size"])
            targets = unpad(torch.maximum(batch["vis_clean"], batch["ir_clean"]), batch["size"])
            for setting, f, t in zip(batch["setting"], fused, targets):
                errors.setdefault(setting, []).append(F.l1_loss(f, t).item())
    for setting, values in errors.items():
        print(f"test {setting:28s} {len(values):3d} images  L1 {sum(values) / len(values):.4f}")


if __name__ == "__main__":  # required for DataLoader workers started with 'spawn'
    main()
