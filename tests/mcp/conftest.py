"""The demo workspace of tests/agent, shared (built once per test run), and ``nerve mcp``
over HTTP in a subprocess."""

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from tests.agent.conftest import demo_ctx, demo_root
from tests.conftest import free_port

__all__ = ["demo_ctx", "demo_root", "mcp_http"]


@contextmanager
def mcp_http(root: Path, *args: str, stderr: Path | None = None) -> Iterator[str]:
    """``nerve mcp --transport http`` on a free loopback port; yields its URL once it
    answers. Its stderr goes to a file (``stderr``, to read it once the server stopped):
    the SDK's logs would fill a pipe and stall it."""
    port = free_port()
    with (tempfile.TemporaryFile() if stderr is None else stderr.open("w+b")) as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nerve", "--workspace", str(root), "mcp", "--transport",
             "http", "--port", str(port), *args], stdout=subprocess.DEVNULL, stderr=log)
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            # one client for every poll: each httpx.get() builds a TLS context, ~50 ms of CPU
            with httpx.Client(timeout=1) as http:
                for _ in range(300):
                    try:
                        http.get(url)
                        break
                    except httpx.TransportError:
                        if proc.poll() is not None:
                            log.seek(0)
                            raise AssertionError(log.read().decode(errors="replace")) from None
                        time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)
