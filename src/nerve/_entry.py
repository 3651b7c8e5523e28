"""The ``nerve`` command's entry point.

Loading the command line imports DuckDB, Ibis, Arrow and the rest (~2 s). Ctrl-C during
those imports ends the command as Ctrl-C during a command does (Click's ``Aborted!``,
exit 1), not with a traceback of whichever import it interrupted.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from nerve.cli import main as run  # noqa: PLC0415 - the imports Ctrl-C may stop
    except KeyboardInterrupt:
        sys.stderr.write("\nAborted!\n")
        raise SystemExit(1) from None
    run()
