"""Names and on-disk layout of a DeMMI-RF dataset directory (documented in ``docs/dataset-layout.md``).

::

    <root>/
      dataset.json        the card (written last: its presence marks a complete build)
      manifest.csv        one row per sample
      recipe.json         the effective recipe (written first; a re-run with another recipe is refused)
      build.json          timings and executor of the last build (not part of the card, not hashed)
      shards/<split>-<NNNNN>.h5

Inside a shard (HDF5)::

    /pairs/<pair id>/vis, /pairs/<pair id>/ir       clean arrays, once per pair
    /samples/<sample id>/vis and/or /ir            only the modality the setting changed; attrs: params ...
    /meta/result                                   uint8 JSON: the shard's manifest rows and skipped pairs

Pair ids contain one ``/`` (``msrs/00004N``), which HDF5 reads as a nested group; that is intended.
"""

from __future__ import annotations

from typing import Any

CARD = "dataset.json"
MANIFEST = "manifest.csv"
RECIPE = "recipe.json"
BUILD_LOG = "build.json"
LOCK = ".build.lock"
SHARD_DIR = "shards"
SHARD_EXT = ".h5"

SHARD_FORMAT = "demmi-rf-shard"
SHARD_FORMAT_VERSION = 1
DATASET_FORMAT = "demmi-rf-dataset"
DATASET_FORMAT_VERSION = 1

META_RESULT = "meta/result"
MODALITIES = ("vis", "ir")
ARRAYS = ("vis", "ir", "vis_clean", "ir_clean")

# Storage of every pixel array, chosen by measurement (docs/dataset-layout.md, "Storage choices"):
# deflate (gzip) level 1 on 64x64 tiles, except arrays whose estimated deflate ratio
# (:func:`demmi_rf.store.shard.deflate_estimate`) exceeds ``raw_above``: noise-dominated arrays, where deflate
# saves under a quarter of the bytes at about twice the cost of a smooth image; those are stored raw and
# contiguous (tiles would pad the image edges). Small tiles make a random 64- or 128-px crop decode little
# beyond the crop (4-9 chunks of 12 KiB); deflate is readable by every HDF5 build (MATLAB, h5py, netCDF),
# unlike lzf.
STORAGE: dict[str, Any] = {
    "compression": "gzip",
    "compression_opts": 1,
    "shuffle": False,
    "chunk": [64, 64],
    "raw_above": 0.75,
}


def shard_file(split: str, index: int) -> str:
    """Relative path of a shard: ``shards/<split>-<NNNNN>.h5``."""
    return f"{SHARD_DIR}/{split}-{index:05d}{SHARD_EXT}"


def pair_array_path(pair_id: str, modality: str) -> str:
    """HDF5 path of a clean array: ``/pairs/<pair id>/<vis|ir>``."""
    return f"/pairs/{pair_id}/{modality}"


def sample_group_path(sample_id: str) -> str:
    """HDF5 path of a sample's group: ``/samples/<sample id>``."""
    return f"/samples/{sample_id}"


def sample_array_path(sample_id: str, modality: str) -> str:
    """HDF5 path of a degraded array: ``/samples/<sample id>/<vis|ir>``."""
    return f"{sample_group_path(sample_id)}/{modality}"


def chunk_shape(shape: tuple[int, ...], storage: dict[str, Any] | None = None) -> tuple[int, ...]:
    """The chunk shape for an image array: the storage tile clipped to the image, all channels together."""
    tile = (storage or STORAGE)["chunk"]
    out = [min(int(tile[0]), shape[0]), min(int(tile[1]), shape[1])]
    return tuple(out + list(shape[2:]))
