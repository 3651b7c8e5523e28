"""The nerve command line: ``nerve <resource> <verb>``, thin shells over the Python API.

Each resource lives in its own module, which exposes ``register(app)``.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from nerve import __version__
from nerve.cli._common import ExitCode

__all__ = ["ExitCode", "app", "main"]

app = typer.Typer(
    name="nerve",
    help="Product telemetry you can trust: events as code, collection, quality, metrics.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: modules under nerve.cli that add commands; each has register(app)
COMMAND_MODULES = [
    "_workspace",
    "_catalog",
    "_serve",
    "_sql",
    "_quarantine",
    "_demo",
    "_check",
    "_metrics",
    "_funnel",
    "_experiment",
    "_anomaly",
    "_ask",
    "_governance",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nerve {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", "-w", envvar="NERVE_WORKSPACE",
                     help="Workspace folder (holds nerve.toml). Default: the current folder.",
                     file_okay=False),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {"workspace": workspace}


for _name in COMMAND_MODULES:
    importlib.import_module(f"nerve.cli.{_name}").register(app)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        if exc.code == ExitCode.USAGE:
            _hint_workspace_position(sys.argv[1:])
        raise


def _hint_workspace_position(args: list[str]) -> None:
    """After a usage error, say where --workspace goes if it was given after the command
    (Click only says `No such option: --workspace`)."""
    start = 0
    while start < len(args) and args[start].startswith("-"):  # the global options
        start += 2 if args[start] in ("--workspace", "-w") else 1
    rest = args[start:]
    for i, arg in enumerate(rest):
        if arg in ("--workspace", "-w") and i + 1 < len(rest):
            folder, others = rest[i + 1], rest[:i] + rest[i + 2:]
        elif arg.startswith("--workspace="):
            folder, others = arg.partition("=")[2], rest[:i] + rest[i + 1:]
        else:
            continue
        fixed = shlex.join(["nerve", *args[:start], "--workspace", folder, *others])
        sys.stderr.write(f"--workspace goes before the command: {fixed}\n")
        return
