"""The demo workspace of tests/agent, shared (built once per test run)."""

from tests.agent.conftest import demo_ctx, demo_root

__all__ = ["demo_ctx", "demo_root"]
