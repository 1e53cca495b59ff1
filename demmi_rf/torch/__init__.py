"""PyTorch data loading for DeMMI-RF (imports torch; ``import demmi_rf`` never imports this package).

* :class:`DeMMIDataset` - a split of a built dataset as dicts of float CHW tensors in [0, 1];
* :data:`ATOM_ORDER` / :func:`atoms_vector` - the multi-hot atom vector (TG-ECNet label order);
* :func:`pad_collate`, :func:`unpad`, :class:`SizeBucketBatchSampler` - whole images of different sizes;
* :class:`PNGFolderDataset` / :func:`export_png_folder` - the PNG-folder baseline of the benchmark.

See ``docs/training.md``.
"""

from .atoms import ATOM_ORDER, atoms_vector
from .collate import SizeBucketBatchSampler, pad_collate, unpad
from .dataset import TASKS, DeMMIDataset, ItemInfo
from .png_baseline import PNGFolderDataset, export_png_folder

__all__ = [
    "ATOM_ORDER", "DeMMIDataset", "ItemInfo", "PNGFolderDataset", "SizeBucketBatchSampler", "TASKS",
    "atoms_vector", "export_png_folder", "pad_collate", "unpad",
]
