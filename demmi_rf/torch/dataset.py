"""``DeMMIDataset``: a map-style PyTorch dataset over a built DeMMI-RF dataset (HDF5 shards + manifest).

See ``docs/training.md`` for the item format, the random-choice derivation and a runnable training loop.
Reading goes through the store reader (:func:`demmi_rf.store.open_dataset`), which opens HDF5 files lazily
in each process, through the store's checks (:mod:`demmi_rf.store.safe`), and reads only the chunks a crop
window touches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError, ShardError
from .atoms import ATOM_ORDER, atoms_vector, dataset_label_order
from .augment import apply_dihedral, crop_size, draw_choices, rgb_to_gray_bt601
from .seeding import SharedEpoch, item_generator

TASKS = ("fusion", "restoration")
#: ``resample`` values: the stored benchmark (None) or a fresh draw per epoch
RESAMPLE_MODES = (None, "epoch")
FUSION_ARRAYS = ("vis", "ir", "vis_clean", "ir_clean")
SettingsArg = str | Iterable[str] | Callable[[Any], bool] | None


@dataclass(frozen=True)
class ItemInfo:
    """What one dataset index points to (no pixels). ``modality`` is set for restoration items only."""

    sample_id: str
    pair_id: str
    setting: str
    height: int
    width: int
    vis_channels: int
    modality: str | None = None
    changes_vis: bool = True
    changes_ir: bool = True

    @property
    def key(self) -> str:
        """The item key the random generator is derived from (sample id, ``#modality`` for restoration)."""
        return self.sample_id if self.modality is None else f"{self.sample_id}#{self.modality}"


class DeMMIDataset(Dataset):
    """A split of a built DeMMI-RF dataset as a PyTorch ``Dataset`` of dicts of float tensors in [0, 1], CHW.

    Parameters
    ----------
    root:
        Dataset directory written by ``demmi build`` (or an already opened store reader).
    split:
        ``"train"``, ``"test"`` or ``None`` (every split).
    settings:
        ``None`` (all), a setting name, a list of names, or a predicate called with the parsed
        :class:`demmi_rf.settings.Setting` (e.g. ``lambda s: "stripe" in s.atoms``). Unknown names raise
        :class:`~demmi_rf.errors.DatasetError` listing the settings the dataset holds.
    task:
        ``"fusion"``: one item per sample with ``vis``, ``ir``, ``vis_clean``, ``ir_clean``.
        ``"restoration"``: one item per (sample, degraded modality) with ``input``, ``target``, ``modality``;
        a VIS-only setting gives a VIS item, ``stripe`` an IR item, a setting that degrades both (e.g.
        ``noise50+haze+stripe``) one item of each, in that order; ``clean`` samples give none.
    crop:
        ``None`` (whole images) or an int / ``(h, w)``: a random window, the same for every array of an item,
        read from the shards without decoding the rest of the image. Images smaller than the crop are an
        error at construction (filter them out or choose a smaller crop).
    augment:
        Apply one of the eight flip/rot90 transforms (the same for every array of an item).
    seed:
        Seed of the per-item random choices; with :meth:`set_epoch` and the item they fix every draw.
    to_gray_vis:
        VIS arrays become one channel (MATLAB ``rgb2gray`` / BT.601). Otherwise VIS is always three channels
        (a gray VIS such as TNO's is repeated), so batches of mixed sources collate.
    resample:
        ``None`` (default): the stored benchmark's degraded arrays. ``"epoch"`` (train split only; refused with
        :class:`~demmi_rf.errors.DatasetError` on any selection that includes the test split): *fresh draws*,
        new parameters and noise for every (seed, epoch, item), synthesised by :func:`demmi_rf.degrade` from the
        stored clean pair through the one seeded path (:func:`demmi_rf.rng.generator`) with the key

        ``SHA-256("demmi-rf/v1" | recipe seed | pair id | setting | modality | "resample" | seed | epoch)``

        (parts joined by U+001F; :func:`demmi_rf.rng.resample_parts`): a function of the recipe seed, the
        sample (pair id, setting), the modality, this dataset's ``seed`` and the epoch only, hence the same
        in any worker and for any worker count. Epoch 0 is a fresh draw too (it differs from the stored
        benchmark, whose key has no ``"resample"`` part). The crop and flip choices are drawn as without
        resampling.
    """

    def __init__(
        self,
        root: str | Path | Any,
        split: str | None = "train",
        settings: SettingsArg = None,
        task: str = "fusion",
        crop: int | Sequence[int] | None = None,
        augment: bool = False,
        seed: int = 0,
        to_gray_vis: bool = False,
        resample: str | None = None,
    ):
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if resample not in RESAMPLE_MODES:
            raise ValueError(f"resample must be one of {', '.join(map(repr, RESAMPLE_MODES))}, got {resample!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.root = root if isinstance(root, (str, Path)) else getattr(root, "root", None)
        self.store = _open_store(root)
        self.split = split
        self.task = task
        self.crop = crop_size(crop)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.to_gray_vis = bool(to_gray_vis)
        self.resample = resample
        self._epoch = SharedEpoch(0)
        if resample is not None and split != "train":
            raise DatasetError(f"{self._where()}: resample={resample!r} draws new degradations for training; it is "
                               f"allowed on the train split only, not split={split!r} (the test split is always the "
                               "stored benchmark)")
        if resample is not None and not hasattr(self.store, "read_fresh"):
            raise TypeError(f"resample={resample!r} needs a store with read_fresh() (demmi_rf.store.open_dataset), "
                            f"got {type(self.store).__name__}")
        frame = _select(self.store, split, settings)
        self._items = _items(frame, task)
        if not self._items:
            raise DatasetError(
                f"{self._where()}: no {task} items in split {split!r} for settings {_describe(settings)}"
                + (" (clean samples give no restoration items)" if task == "restoration" else "")
            )
        if self.crop is not None:
            self._check_crop_fits()
        _check_shards(self.store, frame)
        prepare = getattr(self.store, "prepare_workers", None)
        if prepare is not None:  # before a DataLoader forks its workers: see Dataset.prepare_workers
            prepare((it.sample_id for it in self._items), fresh=resample is not None)
        self.label_order = dataset_label_order(getattr(self.store, "settings", None) or frame["setting"].unique())

    # --- size, order, epoch ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def info(self, index: int) -> ItemInfo:
        """What item ``index`` is (sample id, pair id, setting, size, modality) without reading pixels."""
        return self._items[index]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of every item's tensors without augmentation (the crop size when cropping)."""
        if self.crop is not None:
            return [self.crop] * len(self._items)
        return [(it.height, it.width) for it in self._items]

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the random choices; seen by existing workers too (``persistent_workers=True``).

        Call it before iterating the DataLoader for that epoch (before ``iter(loader)``).
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self._epoch.value = int(epoch)

    # --- items ---------------------------------------------------------------------------------------------
    def choices(self, index: int, epoch: int | None = None) -> tuple[tuple[int, int, int, int] | None, int]:
        """The random choices of item ``index`` in ``epoch`` (default: the current one): ``(window, k)``.

        See :func:`~demmi_rf.torch.augment.draw_choices` for the draw order.
        """
        info = self._items[index]
        rng = item_generator(self.seed, self.epoch if epoch is None else epoch, info.key)
        return draw_choices(rng, info.height, info.width, self.crop, self.augment)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        if index < 0:
            index += len(self._items)
        if not 0 <= index < len(self._items):
            raise IndexError(f"index {index} out of range for a dataset of {len(self._items)} items")
        info = self._items[index]
        window, k = self.choices(index)
        names = FUSION_ARRAYS if info.modality is None else (info.modality, f"{info.modality}_clean")
        # a modality the setting leaves unchanged is its clean array: read it once (benchmark spec section 6)
        alias = {}
        if not info.changes_vis:
            alias["vis"] = "vis_clean"
        if not info.changes_ir:
            alias["ir"] = "ir_clean"
        wanted = tuple(dict.fromkeys(alias.get(n, n) for n in names))
        if self.resample is None:
            arrays = self.store.read(info.sample_id, arrays=wanted, window=window)
        else:  # a fresh draw of (recipe seed, sample, modality, dataset seed, epoch): see the class docstring
            arrays = self.store.read_fresh(info.sample_id, self.seed, self.epoch, arrays=wanted, window=window)
        tensors = {name: self._tensor(name, arrays[alias.get(name, name)], k) for name in names}
        item: dict[str, Any]
        if info.modality is None:
            item = tensors
        else:
            item = {"input": tensors[names[0]], "target": tensors[names[1]], "modality": info.modality}
        item["setting"] = info.setting
        item["atoms"] = torch.from_numpy(atoms_vector(info.setting, self.label_order))
        item["sample_id"] = info.sample_id
        item["pair_id"] = info.pair_id
        return item

    def _tensor(self, name: str, array: np.ndarray, k: int) -> torch.Tensor:
        return array_to_tensor(array, k, vis=name.startswith("vis"), to_gray_vis=self.to_gray_vis)

    # --- helpers -------------------------------------------------------------------------------------------
    def _where(self) -> str:
        return str(self.root) if self.root is not None else "dataset"

    def _check_crop_fits(self) -> None:
        ch, cw = self.crop
        need_h, need_w = (max(ch, cw), max(ch, cw)) if self.augment and ch != cw else (ch, cw)
        small = [it for it in self._items if it.height < need_h or it.width < need_w]
        if small:
            shown = ", ".join(f"{it.sample_id} ({it.height}x{it.width})" for it in small[:5])
            more = f" and {len(small) - 5} more" if len(small) > 5 else ""
            raise ValueError(
                f"{self._where()}: crop {ch}x{cw}{' with rotations' if need_h != ch or need_w != cw else ''} "
                f"needs images of at least {need_h}x{need_w}; {len(small)} item(s) are smaller: {shown}{more}. "
                "Choose a smaller crop or filter those samples out."
            )

    def __repr__(self) -> str:
        return (
            f"DeMMIDataset(root={self._where()!r}, split={self.split!r}, task={self.task!r}, items={len(self)}, "
            f"crop={self.crop}, augment={self.augment}, seed={self.seed}, to_gray_vis={self.to_gray_vis}, "
            f"resample={self.resample!r}, epoch={self.epoch})"
        )


def array_to_tensor(array: np.ndarray, k: int = 0, vis: bool = False, to_gray_vis: bool = False) -> torch.Tensor:
    """A uint8 ``H x W`` or ``H x W x C`` array -> float32 ``C x H x W`` tensor in [0, 1] (``x / 255`` in float32).

    ``k`` is the dihedral transform (applied as a view). For VIS arrays (``vis=True``): ``to_gray_vis``
    converts RGB to one BT.601 channel (:func:`rgb_to_gray_bt601`); otherwise a gray VIS is repeated to three
    channels. The conversion is one numpy pass from the (possibly strided) view into a new float32 array; no
    torch operator runs, so it costs the same in the main process as in a worker (torch's intra-op thread
    pool makes small tensor ops slow outside workers).
    """
    if vis and to_gray_vis:
        array = rgb_to_gray_bt601(array)
    if k:
        array = apply_dihedral(array, k)
    chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    channels = 3 if (vis and not to_gray_vis and chw.shape[0] == 1) else chw.shape[0]
    out = np.empty((channels, *chw.shape[1:]), dtype=np.float32)
    np.divide(chw, np.float32(255.0), out=out, dtype=np.float32)
    return torch.from_numpy(out)


def _open_store(root: str | Path | Any) -> Any:
    if isinstance(root, (str, Path)):
        from ..store import open_dataset  # noqa: PLC0415 - the store pulls h5py and pandas

        return open_dataset(root)
    if not (hasattr(root, "samples") and hasattr(root, "read")):
        raise TypeError(f"root must be a dataset directory or an opened store, got {type(root).__name__}")
    return root


def _check_shards(store: Any, frame: Any) -> None:
    """Fail early, naming the shard, when a shard the selection needs is missing or its size differs from
    the size the dataset card records (a truncated or replaced file). Corruption of a shard's content is
    found when it is read (:class:`~demmi_rf.errors.ShardError`) or by ``demmi verify``."""
    root, card = getattr(store, "root", None), getattr(store, "card", None)
    if root is None or not isinstance(card, dict) or "shard" not in frame:
        return
    from ..store.safe import shard_path  # noqa: PLC0415 - the store pulls h5py

    sizes = {s.get("file"): s.get("bytes", s.get("size")) for s in card.get("shards", []) if isinstance(s, dict)}
    for rel in sorted(set(frame["shard"])):
        path = shard_path(root, rel)  # a valid shard name inside the dataset folder, or ShardError
        if not path.is_file():
            raise ShardError(f"shard {rel}: file is missing ({path}); rebuild with the same 'demmi build' command")
        expected = sizes.get(rel)
        actual = path.stat().st_size
        if expected is not None and int(expected) != actual:
            raise ShardError(
                f"shard {rel}: {actual} bytes on disk but the dataset card records {int(expected)} "
                "(truncated or replaced); run 'demmi verify' and rebuild"
            )


def _describe(settings: SettingsArg) -> str:
    if settings is None:
        return "(all)"
    if callable(settings):
        return f"selected by {getattr(settings, '__name__', 'a predicate')}"
    return repr(settings if isinstance(settings, str) else list(settings))


def _select(store: Any, split: str | None, settings: SettingsArg) -> Any:
    """Manifest rows of ``split`` with the chosen settings, in manifest order."""
    if hasattr(settings, "atoms") and not callable(settings):  # one parsed Setting
        settings = str(settings)
    if settings is None or isinstance(settings, str):
        return store.samples(split=split, settings=None if settings is None else [settings])
    if callable(settings):
        from ..settings import parse_setting  # noqa: PLC0415

        frame = store.samples(split=split)
        parsed = {name: parse_setting(name) for name in frame["setting"].unique()}
        keep = frame["setting"].map(lambda name: bool(settings(parsed[name])))
        return frame[keep.to_numpy(dtype=bool)]
    return store.samples(split=split, settings=[s if isinstance(s, str) else str(s) for s in settings])


def _items(frame: Any, task: str) -> list[ItemInfo]:
    from ..settings import parse_setting  # noqa: PLC0415

    cols = [frame[c].tolist() for c in ("sample_id", "pair_id", "setting", "height", "width", "vis_channels")]
    parsed: dict[str, Any] = {}
    items: list[ItemInfo] = []
    for sample_id, pair_id, setting, h, w, c in zip(*cols):
        if setting not in parsed:
            parsed[setting] = parse_setting(setting)
        st = parsed[setting]
        base = dict(sample_id=sample_id, pair_id=pair_id, setting=setting, height=int(h), width=int(w),
                    vis_channels=int(c), changes_vis=st.changes_vis, changes_ir=st.changes_ir)
        if task == "fusion":
            items.append(ItemInfo(**base))
        else:  # one item per degraded modality, VIS first
            items.extend(ItemInfo(**base, modality=m) for m, on in (("vis", st.changes_vis),
                                                                    ("ir", st.changes_ir)) if on)
    return items


__all__ = ["ATOM_ORDER", "DeMMIDataset", "ItemInfo", "RESAMPLE_MODES", "TASKS", "array_to_tensor"]
