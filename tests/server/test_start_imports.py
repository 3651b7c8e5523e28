"""What ``nerve serve`` imports before it serves: Ibis (and the analysis, semantic and
anomaly modules built on it), httpx and the demo's simulator took over half a second of
CPU at every start, for read APIs, background checks, webhooks and commands that may
never run in that process. They load at first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nerve
from nerve.workspace import init_workspace

_LATER = ("ibis", "nerve.analytics", "nerve.governance", "nerve.semantic._layer",
          "nerve.anomaly._service", "nerve.quality._runner", "nerve.quality._history",
          "httpx", "nerve.demo._simulate")

_SCRIPT = """\
import os, sys
import nerve.cli  # as `nerve serve` does
from nerve.server import serve
from nerve.workspace import Workspace

def ready(state):
    print("loaded", [m for m in {later!r} if m in sys.modules], flush=True)
    os._exit(0)

serve(Workspace.load({root!r}), port=0, on_ready=ready)
"""


def test_serve_starts_without_ibis_and_the_read_apis_modules(tmp_path: Path) -> None:
    init_workspace(tmp_path / "ws")
    script = _SCRIPT.format(later=_LATER, root=str(tmp_path / "ws"))
    source = str(Path(nerve.__file__).parents[1])  # the nerve under test, installed or not
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": source}, timeout=120, check=False)
    assert done.stdout.splitlines()[-1:] == ["loaded []"], (done.stdout[-2000:],
                                                          done.stderr[-2000:])

