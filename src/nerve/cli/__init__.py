"""The nerve command line: ``nerve <resource> <verb>``, thin shells over the Python API.

Each resource lives in its own module, which exposes ``register(app)``.
"""

from __future__ import annotations

import importlib
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
    app()
