"""Ctrl-C during a query stops it: DuckDB, running a query in the main thread, saw the
signal only now and then (a long query ran to its end, or came out of `nerve sql` as a
``RuntimeError('Query interrupted')`` traceback). The query raises ``KeyboardInterrupt``
within seconds, so the command line answers it with `Aborted!` as it does any Ctrl-C."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal, threading
import duckdb
from nerve.warehouse import Warehouse
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    Warehouse.run_query(duckdb.connect().cursor(),
                        "SELECT max(md5(i::VARCHAR)) FROM range(20000000000) t(i)")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""


def test_an_interrupted_query_raises_keyboard_interrupt() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.stdout.strip() == "KeyboardInterrupt", done.stderr[-2000:]
