"""The quarantine: events the catalog refused, kept with every violation, replayable.

>>> from nerve.quarantine import judge_rows
>>> judge_rows(catalog, rows)  # doctest: +SKIP
"""

from nerve.quarantine._replay import (
    Decision,
    ReplayReport,
    judge_rows,
    preview,
    preview_query,
    replay,
)

__all__ = ["Decision", "ReplayReport", "judge_rows", "preview", "preview_query", "replay"]
