r"""Per-item random generators and an epoch counter that reaches DataLoader workers.

Every random choice of an item (crop window, then dihedral transform) comes from its own generator,
derived through the toolkit's one seeded path, :func:`demmi_rf.rng.generator`:

.. math::  G_{\text{item}} = \texttt{generator}(\text{seed},\ \text{item key},\ \texttt{"epoch<e>"},
           \ \texttt{"torch-augment"})

where the item key is the sample id (fusion) or ``<sample id>#<modality>`` (restoration), i.e. what the item
index points to in the manifest-ordered dataset. Nothing reads numpy's, Python's or torch's global random state,
so results do not depend on ``worker_init_fn``, on the worker an item lands in, or on the number of workers,
and two workers never repeat each other's draws (pytorch/pytorch#5059 cannot happen). Keying by sample id
rather than by position also keeps an item's crops unchanged when other settings are filtered out.

:class:`SharedEpoch` holds the epoch in shared memory, so ``dataset.set_epoch(e)`` in the main process is seen
by workers that already exist (``persistent_workers=True``), under ``fork``, ``spawn`` and ``forkserver``.
"""

from __future__ import annotations

import multiprocessing.context
import multiprocessing.sharedctypes
from typing import Any

import numpy as np

from ..rng import generator

AUGMENT_STREAM = "torch-augment"


def item_generator(seed: int, epoch: int, item_key: str) -> np.random.Generator:
    """The generator of one item in one epoch (see the module docstring for the derivation)."""
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    return generator(seed, item_key, f"epoch{int(epoch)}", AUGMENT_STREAM)


class SharedEpoch:
    """An integer in shared memory (a lock-free ``RawValue``; one writer, the main process).

    Pickled while a worker process is being started (``spawn``/``forkserver``), it keeps pointing at the same
    shared memory; with ``fork`` the memory is inherited. Pickled any other way (``copy.deepcopy``,
    ``pickle.dumps``), it becomes an independent counter holding the current value.
    """

    def __init__(self, value: int = 0):
        self._value = multiprocessing.sharedctypes.RawValue("q", int(value))

    @property
    def value(self) -> int:
        return int(self._value.value)

    @value.setter
    def value(self, value: int) -> None:
        self._value.value = int(value)

    def __reduce__(self) -> tuple[Any, ...]:
        if multiprocessing.context.get_spawning_popen() is not None:
            return (_rebuild_shared, (self._value,))
        return (SharedEpoch, (self.value,))


def _rebuild_shared(raw: Any) -> SharedEpoch:
    out = SharedEpoch.__new__(SharedEpoch)
    out._value = raw
    return out
