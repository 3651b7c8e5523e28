"""nerve: product telemetry you can trust, from events as code to answers."""

__version__ = "0.1.0"

__all__ = ["__version__"]
