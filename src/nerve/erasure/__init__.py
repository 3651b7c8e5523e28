"""Erasure: forgetting a user, and enforcing each event's retention (docs/privacy.md).

``forget`` deletes a user's rows from ``events`` and ``quarantine``; ``expire`` deletes
the rows older than their event's ``retention`` in the catalog. Both run on a warehouse
cursor under the loader's lock (``Loader.exclusive``), after the loader has drained the
log, and record what they did (counts, never ids) in the ``erasures`` table.
``RetentionJob`` runs ``expire`` daily inside ``nerve serve``; ``compact`` rewrites the
DuckDB file so that deleted rows' bytes leave the disk too.
"""

from nerve.erasure._erase import (
    ERASURES_TABLE,
    Erasure,
    RetentionJob,
    compact,
    expire,
    expire_rows,
    forget,
    forget_users,
    retention_enforced,
    uncataloged_retention,
)

__all__ = ["ERASURES_TABLE", "Erasure", "RetentionJob", "compact", "expire", "expire_rows",
           "forget", "forget_users", "retention_enforced", "uncataloged_retention"]
