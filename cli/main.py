"""The ``demmi`` click group.

Each sub-command lives in its own module of this package and is imported only when it is invoked, so
``demmi scan`` never pays for torch and ``demmi --help`` stays fast.

Errors are turned into messages and exit codes in one place, :meth:`LazyGroup.invoke` (docs/cli.md): a
:class:`~demmi_rf.errors.DemmiError` prints ``Error: <message>`` on stderr and exits 1 (a missing optional
package: its one-line ``pip install`` hint); click's usage errors exit 2; an error of the operating system
(disk full, permission denied) exits 74; Ctrl-C exits 130; anything else is a bug: one line ``internal error:
<type>: <message> ...`` and exit 70, with the traceback only when ``DEMMI_DEBUG=1``.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import os
import sys
import traceback
from typing import Any, NoReturn

import click

from demmi_rf import __version__
from demmi_rf.errors import DemmiError

from .common import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OS

DEBUG_ENV = "DEMMI_DEBUG"

# name -> (module inside demmi_cli, attribute, one-line help shown by ``demmi --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "scan": ("scan", "scan", "List the IR/VIS pairs found under folders, and every problem."),
    "preview": ("preview", "preview", "Contact sheet of a pair under degradation settings."),
    "build": ("build", "build", "Build a DeMMI-RF dataset (HDF5 shards + manifest) from sources."),
    "verify": ("verify", "verify", "Check a built dataset's shard and array checksums."),
    "materialize": ("materialize", "materialize", "Store every array of a virtual dataset (demmi build --virtual)."),
    "info": ("info", "info", "Print a built dataset's card."),
    "eval": ("eval", "eval_cmd", "Score fused images of a test split with pinned metrics."),
    "baseline": ("baseline", "baseline", "Run a built-in classical fusion baseline."),
    "leaderboard": ("leaderboard", "leaderboard", "Render one table from several results files."),
    "robustness": ("robustness", "robustness", "Severity curves and mrCE of methods on a severity recipe."),
    "train": ("train", "train", "Train the TG-ECNet reference model (stage 1 or 2)."),
    "fuse": ("fuse", "fuse", "Fuse images with a TG-ECNet checkpoint."),
    "card": ("card", "card", "Write a dataset's README card and Croissant metadata."),
    "export": ("export", "export", "Export a dataset as PNG folders, WebDataset shards or a Hugging Face folder."),
    "report": ("report", "report", "Write a static web report: leaderboard, plots, visual comparison."),
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

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; turn what it raises into one message and a documented exit code."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors (2), --help, explicit exits
        except DemmiError as exc:
            _fail(f"Error: {exc}", EXIT_ERROR, exc)
        except ModuleNotFoundError as exc:
            hint = _missing_optional(exc)
            if hint is None:
                _internal(exc)
            _fail(f"Error: {hint}", EXIT_ERROR, exc)
        except KeyboardInterrupt as exc:
            _fail("interrupted", EXIT_INTERRUPTED, exc)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click's main handles a closed pipe (``demmi ... | head``)
            _fail(f"Error: {_os_message(exc)}", EXIT_OS, exc)
        except Exception as exc:  # noqa: BLE001 - the one place where unexpected errors are reported
            _internal(exc)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def _fail(message: str, code: int, exc: BaseException) -> NoReturn:
    """Print ``message`` on stderr (after the traceback when DEMMI_DEBUG=1) and exit with ``code``."""
    if _debug():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    click.echo(message, err=True)
    sys.exit(code)


def _internal(exc: BaseException) -> NoReturn:
    text = " ".join(str(exc).split()) or "(no message)"
    _fail(f"internal error: {type(exc).__name__}: {text} (set {DEBUG_ENV}=1 for the traceback; please report)",
          EXIT_INTERNAL, exc)


def _missing_optional(exc: ModuleNotFoundError) -> str | None:
    """The install hint when ``exc`` is about an optional package of an extra (torch, safetensors...)."""
    from demmi_rf.optional import EXTRA_OF, install_hint  # noqa: PLC0415

    top = (exc.name or "").split(".")[0]
    return install_hint(top) if top in EXTRA_OF else None


def _os_message(exc: OSError) -> str:
    """``<path>: <reason>`` of an operating-system error (``No space left on device``...)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = ": ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{where}: {reason}" if where else reason


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="demmi")
def cli() -> None:
    """DeMMI-RF: build, verify and evaluate the degraded IR/VIS image fusion benchmark.

    Exit codes: 0 success; 1 an error in the data, or a check found problems; 2 a wrong command line (or a
    misspelt name); 70 an internal error (DEMMI_DEBUG=1 shows the traceback); 74 the system refused an
    operation; 130 interrupted. Progress goes to stderr, results to stdout. See docs/cli.md.
    """


if __name__ == "__main__":  # pragma: no cover
    cli()
