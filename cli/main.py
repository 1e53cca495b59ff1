"""The ``demmi`` click group.

Each sub-command lives in its own module of this package and is imported only when it is invoked, so
``demmi scan`` never pays for torch and ``demmi --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from demmi_rf import __version__

# name -> (module inside demmi_cli, attribute, one-line help shown by ``demmi --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "scan": ("scan", "scan", "List the IR/VIS pairs found under folders, and every problem."),
    "preview": ("preview", "preview", "Contact sheet of a pair under degradation settings."),
    "build": ("build", "build", "Build a DeMMI-RF dataset (HDF5 shards + manifest) from sources."),
    "verify": ("verify", "verify", "Check a built dataset's shard and array checksums."),
    "info": ("info", "info", "Print a built dataset's card."),
    "eval": ("eval", "eval_cmd", "Score fused images of a test split with pinned metrics."),
    "baseline": ("baseline", "baseline", "Run a built-in classical fusion baseline."),
    "leaderboard": ("leaderboard", "leaderboard", "Render one table from several results files."),
    "train": ("train", "train", "Train the TG-ECNet reference model (stage 1 or 2)."),
    "fuse": ("fuse", "fuse", "Fuse images with a TG-ECNet checkpoint."),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        module = COMMANDS[name][0]
        return importlib.util.find_spec(f"demmi_cli.{module}") is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"demmi_cli.{module}"), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="demmi")
def cli() -> None:
    """DeMMI-RF: build, verify and evaluate the degraded IR/VIS image fusion benchmark."""


if __name__ == "__main__":  # pragma: no cover
    cli()
