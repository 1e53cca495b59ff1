"""What every ``demmi`` command shares: exit codes, the ``--progress`` and ``--json`` options, the
``--degradations`` option, and name checks with "did you mean" (docs/cli.md).

Conventions (docs/cli.md):

* progress goes to stderr through :mod:`demmi_rf.progress` (a bar on a terminal, ``[demmi] ...`` log lines with
  rate and ETA off one; ``--no-progress``: nothing); results go to stdout;
* ``--json`` prints one JSON document on stdout and nothing else there;
* a name that does not exist (setting, profile, split, baseline, recipe, executor) is a usage error (exit 2)
  whose message suggests the close matches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from demmi_rf.errors import unknown_name

# exit codes (documented in docs/cli.md)
EXIT_OK = 0
EXIT_ERROR = 1  # a DemmiError (bad data, file or recipe), or the check found problems (verify, scan)
EXIT_USAGE = 2  # the command line is wrong (click's usage errors; an unknown or misspelt name)
EXIT_INTERNAL = 70  # a bug: an unexpected exception (EX_SOFTWARE of sysexits.h)
EXIT_OS = 74  # the operating system refused an operation (disk full, permission denied...; EX_IOERR)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

PROGRESS_INTERVAL_ENV = "DEMMI_PROGRESS_INTERVAL"  # seconds between two log lines off a terminal (default 30)

F = TypeVar("F", bound=Callable[..., Any])


# --- progress ------------------------------------------------------------------------------------------------
def progress_option(f: F) -> F:
    """``--progress/--no-progress`` (default: automatic) as the ``progress`` argument (None/True/False)."""
    return click.option(
        "--progress/--no-progress", "progress", default=None, callback=_check_progress,
        help="Progress on stderr. Default: a bar on a terminal, '[demmi] ...' lines with rate and ETA otherwise "
             f"(every ${PROGRESS_INTERVAL_ENV} s, default 30); --no-progress: none.")(f)


def _check_progress(ctx: click.Context, param: click.Parameter, value: bool | None) -> bool | None:
    if value is not False:
        log_interval()  # a bad $DEMMI_PROGRESS_INTERVAL is refused before any work
    return value


def log_interval() -> float:
    """Seconds between two progress lines off a terminal: ``$DEMMI_PROGRESS_INTERVAL`` or 30."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV, "")
    try:
        value = float(raw) if raw.strip() else 30.0
    except ValueError:
        raise click.UsageError(f"${PROGRESS_INTERVAL_ENV} must be a number of seconds, not {raw!r}") from None
    if not value >= 0:  # also refuses NaN
        raise click.UsageError(f"${PROGRESS_INTERVAL_ENV} must be >= 0, not {raw!r}")
    return value


def make_progress(total: int | None, label: str, flag: bool | None, unit: str = "items"):
    """A :class:`demmi_rf.progress.Progress` for a command's ``--progress`` flag (None: auto, False: off)."""
    from demmi_rf.progress import progress  # noqa: PLC0415

    return progress(total, label, unit=unit, mode="off" if flag is False else "auto", log_every_s=log_interval())


# --- machine-readable output -----------------------------------------------------------------------------------
def json_option(f: F) -> F:
    """``--json``: one JSON document on stdout (progress and messages stay on stderr)."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON summary on stdout for scripts (progress stays on stderr).")(f)


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null (strict JSON has no NaN), paths become strings."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(document: Any) -> str:
    """``document`` as strict JSON text (no NaN: undefined values are null), with a final newline."""
    return json.dumps(_plain(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def echo_json(document: Any) -> None:
    """Print ``document`` as strict JSON on stdout."""
    click.echo(json_text(document), nl=False)


# --- names -----------------------------------------------------------------------------------------------------
class NameChoice(click.Choice):
    """``click.Choice`` over an API's own names whose error suggests the close matches ("did you mean")."""

    def __init__(self, choices: Sequence[str], what: str):
        super().__init__(list(choices))
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value not in self.choices:
            self.fail(unknown_name(self.what, value, self.choices), param, ctx)
        return super().convert(value, param, ctx)


def check_name(value: str, choices: Iterable[str], what: str, param_hint: str) -> str:
    """``value`` when it is one of ``choices``; else a usage error (exit 2) suggesting the close matches."""
    pool = list(choices)
    if value not in pool:
        raise click.BadParameter(unknown_name(what, value, pool), param_hint=param_hint)
    return value


def parse_degradations(value: str | Sequence[str] | None, param_hint: str = "--degradations") -> list[str] | None:
    """``"haze,noise50+haze"`` (or several such strings) -> canonical setting names; None when not given.
    A malformed setting or an unknown atom is a usage error (exit 2) with a suggestion."""
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.recipe import parse_settings_option  # noqa: PLC0415

    if value is None or (not isinstance(value, str) and not value):
        return None
    text = value if isinstance(value, str) else ",".join(value)
    try:
        names = parse_settings_option(text)
    except DemmiError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    return list(dict.fromkeys(names))  # a setting named twice counts once


def _degradations_callback(ctx: click.Context, param: click.Parameter, value: Any) -> list[str] | None:
    return parse_degradations(value)


def degradations_option(help_text: str) -> Callable[[F], F]:
    """The one ``--degradations LIST`` option (comma-separated setting names), parsed and checked up front."""
    return click.option("--degradations", "degradations", default=None, metavar="LIST",
                        callback=_degradations_callback, help=help_text)


def check_recipe_name(ctx: click.Context | None, param: click.Parameter | None, value: str) -> str:
    """``--recipe`` callback: a shipped recipe name or an existing/``.toml``/``.json`` file; a misspelt name
    is a usage error suggesting the shipped names."""
    from demmi_rf.recipe import shipped_recipes  # noqa: PLC0415

    shipped = shipped_recipes()
    path = Path(value)
    if value in shipped or path.suffix in (".toml", ".json") or path.exists():
        return value
    raise click.BadParameter(unknown_name("recipe", value, shipped) + " (or a .toml/.json recipe file)",
                             param_hint="--recipe")


def check_selection(root: Path, split: str | None, settings: Sequence[str] | None) -> None:
    """Check ``--split`` and ``--degradations`` against the dataset in ``root`` before any work: an unknown
    split or a setting the dataset does not hold is a usage error (exit 2) with a suggestion. A dataset that
    cannot be opened raises its :class:`~demmi_rf.errors.DatasetError` (exit 1)."""
    from demmi_rf.store import open_dataset  # noqa: PLC0415

    with open_dataset(root) as ds:
        if split is not None:
            check_name(split, ds.splits, "split", "--split")
        for s in settings or ():
            check_name(s, ds.settings, f"setting (of {root})", "--degradations")
