"""``nerve init``: create a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nerve.cli._common import console, handle_errors
from nerve.errors import WorkspaceError
from nerve.workspace import CONFIG_FILE, enclosing_workspace, init_workspace


def register(app: typer.Typer) -> None:
    app.command("init")(init)


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")],
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's)")] = None,
    nested: Annotated[bool, typer.Option(
        "--nested", help="Create it even inside another workspace's folder.")] = False,
) -> None:
    """Create a workspace: nerve.toml with write keys, events/, metrics/, a git-ignored .nerve/.

    Then write one YAML file per event in events/ (docs/catalog.md), run nerve serve in
    the folder and send events with a write key (docs/sdk.md).

    Example: nerve init shop && cd shop && nerve catalog lint
    """
    outer = enclosing_workspace(directory)
    if outer is not None and not nested:
        # commands read the workspace of the current folder only: a workspace inside
        # another is a second catalog and warehouse, not a part of the first
        raise WorkspaceError(
            f"{Path(directory).resolve()} is inside the workspace {outer} "
            f"({outer / CONFIG_FILE}); create the new one elsewhere, or pass --nested "
            "to create a separate workspace inside it")
    ws = init_workspace(directory, name)
    console.print(f"Created workspace [bold]{ws.config.name}[/bold] in {ws.root}")
    for source in ws.config.sources:
        console.print(f"  source {source.name:<8} write key {source.write_key}")
    # a line each, under 80 columns: a terminal that wraps them does not split a command
    console.print("Next: add events/*.yaml (one file per event: docs/catalog.md),")
    console.print("then run `nerve serve` in that folder.")
