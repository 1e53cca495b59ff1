"""Storage of built datasets: HDF5 shards, the manifest, the card, checksums, reading and verification.

Reader API (``docs/dataset-layout.md``)::

    from demmi_rf.store import open_dataset
    with open_dataset(root) as ds:
        ds.card, ds.card_hash, ds.content_hash, ds.manifest
        rows = ds.samples(split="test", settings=["haze", "noise50+haze"])
        arrays = ds.read(rows.sample_id[0], arrays=("vis", "ir_clean"), window=(0, 0, 128, 128))
"""

from .arrays import ADAPTER_FOR_FORMAT, ArrayStore, HDF5ArrayStore, VirtualArrayStore, open_array_store
from .card import Card, card_bytes, card_hash, load_card, read_card
from .checksums import array_sha256, file_sha256
from .identity import content_hash, content_text
from .layout import ARRAYS, CARD, MANIFEST, SHARD_DIR, STORAGE, shard_file
from .manifest import read_manifest, rows_to_frame
from .reader import Dataset, open_dataset
from .safe import open_shard
from .shard import ShardWriter
from .verify import Problem, VerifyReport, verify_dataset

__all__ = [
    "ADAPTER_FOR_FORMAT", "ARRAYS", "CARD", "MANIFEST", "SHARD_DIR", "STORAGE", "ArrayStore", "Card", "Dataset",
    "HDF5ArrayStore", "Problem", "ShardWriter", "VerifyReport", "VirtualArrayStore", "open_array_store",
    "array_sha256", "card_bytes", "card_hash", "content_hash", "content_text",
    "file_sha256", "load_card", "open_dataset", "open_shard", "read_card",
    "read_manifest", "rows_to_frame", "shard_file", "verify_dataset",
]
