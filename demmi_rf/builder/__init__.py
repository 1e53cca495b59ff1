"""Building datasets: plan shards from pairs and a recipe, run them on an executor, resume, summarise.

Main entry point: :func:`build_dataset` (the ``demmi build`` command).
"""

from .driver import BuildReport, build_dataset, default_workers, resolve_recipe
from .errors import BuildError
from .executors import EXECUTORS
from .plan import ShardTask, assign_split, plan_shards
from .task import run_shard

__all__ = ["EXECUTORS", "BuildError", "BuildReport", "ShardTask", "assign_split", "build_dataset",
           "default_workers", "plan_shards", "resolve_recipe", "run_shard"]
