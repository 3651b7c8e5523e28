"""The SDK is light: importing it loads neither the server nor any engine."""

from __future__ import annotations

import subprocess
import sys

import nerve.sdk

# (rich is not listed: httpx itself imports it for its optional CLI when it is installed)
HEAVY = ["duckdb", "ibis", "pyarrow", "pandas", "starlette", "uvicorn", "jsonschema_rs",
         "typer", "yaml", "nerve.server", "nerve.collector", "nerve.warehouse",
         "nerve.loader", "nerve.log", "nerve.catalog", "nerve.workspace", "nerve.envelope"]


def test_importing_the_sdk_loads_nothing_heavy() -> None:
    code = (
        "import sys, nerve.sdk\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.')"
        " for h in heavy))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
    assert out.stderr == ""


def test_the_public_names_are_pinned() -> None:
    assert sorted(nerve.sdk.__all__) == sorted([
        "DEFAULT_HOST", "Client", "ClientStats", "ClosedError", "ConfigError",
        "DeliveryError", "ErrorCallback", "InvalidMessageError", "QueueFullError",
        "RejectedError", "__version__", "alias", "default_client", "flush", "get_variant",
        "group", "identify", "page", "screen", "shutdown", "track",
    ])
    for name in nerve.sdk.__all__:
        assert hasattr(nerve.sdk, name), name
