"""The ``nerve`` command's entry point.

Loading the command line takes ~0.5 s; SciPy, pandas, Ibis and DuckDB load later, in the
commands that read data. Ctrl-C during those imports ends the command as Ctrl-C during a
command does (Click's ``Aborted!``, exit 1), not with a traceback of whichever import it
interrupted.
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
