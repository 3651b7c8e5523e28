"""Who may call the read APIs: the server's admin token, and named readers from nerve.toml.

```toml
[[readers]]
name = "ana"                      # what the audit log records as who
role = "reader"                   # reader: every read API; admin: also forget, expire, checks
token_env = "NERVE_TOKEN_ANA"     # the token is read from this environment variable
personal = "masked"               # masked (a reader's default) or visible (an admin's)
```

Tokens never live in nerve.toml (it is committed); ``nerve serve`` reads each one from its
variable at start and refuses to start when one is missing or shorter than 16 characters.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from nerve.errors import WorkspaceError
from nerve.workspace import Workspace

__all__ = ["ADMIN", "INVALID", "MASKED_HEADER", "ROLES", "Reader", "identify", "load_readers",
           "sees_masked"]

ROLES = ("reader", "admin")
PERSONAL = ("masked", "visible")
#: an admin asking for the reader's view (``nerve mcp`` and ``nerve ask`` do, for agents)
MASKED_HEADER = "x-nerve-view"
_MIN_TOKEN = 16
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Reader:
    """A caller of the read APIs: its name (for the audit log), role, and whether it sees
    personal values masked."""

    name: str
    role: str
    masked: bool = False


#: the holder of the server's own token (``.nerve/server.json``)
ADMIN = Reader("admin", "admin")
#: a bearer token that matches nobody
INVALID = Reader("invalid token", "", masked=True)


def load_readers(workspace: Workspace, admin_token: str | None) -> dict[str, Reader]:
    """Token -> reader: the admin token (when given) and every ``[[readers]]`` entry's.

    Raises WorkspaceError naming the entry and field when one is malformed, or its
    token variable is unset, short or shared with another reader.
    """
    tokens = {admin_token: ADMIN} if admin_token is not None else {}
    items = workspace.config.raw.get("readers", [])
    path = workspace.root / "nerve.toml"
    if not isinstance(items, list):
        raise WorkspaceError(f"{path}: [[readers]]: expected a list of tables")
    names: set[str] = set()
    for i, item in enumerate(items, 1):
        where = f"{path}: [[readers]] #{i}"
        if not isinstance(item, dict):
            raise WorkspaceError(f"{where}: must be a table")
        name, role, env = item.get("name"), item.get("role", "reader"), item.get("token_env")
        if not isinstance(name, str) or not name.strip() or name in (ADMIN.name, *names):
            raise WorkspaceError(f"{where} name: required, a name of its own (not 'admin'), "
                                 f"got {name!r}")
        if role not in ROLES:
            raise WorkspaceError(f"{where} role: expected one of {', '.join(ROLES)}, "
                                 f"got {role!r}")
        personal = item.get("personal", "masked" if role == "reader" else "visible")
        if personal not in PERSONAL:
            raise WorkspaceError(f"{where} personal: expected one of {', '.join(PERSONAL)}, "
                                 f"got {personal!r}")
        if not isinstance(env, str) or not _ENV_NAME.fullmatch(env):
            raise WorkspaceError(f"{where} token_env: required, the name of the environment "
                                 f"variable holding {name}'s token, got {env!r}")
        token = os.environ.get(env, "")
        if len(token) < _MIN_TOKEN:
            raise WorkspaceError(f"{where} token_env: ${env} must hold {name}'s token, at "
                                 f"least {_MIN_TOKEN} characters (`openssl rand -hex 24` "
                                 "makes one); it is " + ("unset" if not token else "shorter"))
        if token in tokens:
            raise WorkspaceError(f"{where} token_env: ${env} holds the token of another "
                                 "reader; each needs its own")
        names.add(name)
        tokens[token] = Reader(name, role, masked=personal == "masked")
    return tokens


def identify(tokens: dict[str, Reader], authorization: str | None) -> Reader | None:
    """The reader an ``Authorization: Bearer`` header names; None without one, ``INVALID``
    for a token nobody holds. Every token is compared in constant time."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    given = token.strip().encode()
    found = INVALID
    for known, reader in tokens.items():
        if secrets.compare_digest(given, known.encode()):
            found = reader
    return found


def sees_masked(reader: Reader, view: str | None) -> bool:
    """Whether ``reader`` reads the masked warehouse: when its entry says so (a reader's
    default), or when its request sends ``x-nerve-view: masked`` (``view``)."""
    return reader.masked or view == "masked"
