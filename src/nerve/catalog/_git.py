"""The catalog as git knows it: the events/ folder at a ref, and the history of a file.

Git is called as a subprocess (``git archive``, ``git log``); nothing here writes to the
repository.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from nerve.catalog._catalog import Catalog
from nerve.errors import CatalogError, UserError, did_you_mean

__all__ = ["Commit", "catalog_at_ref", "file_history", "in_git"]


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    date: str
    author: str
    subject: str


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    git = shutil.which("git")
    if git is None:
        raise UserError("git is not installed; `nerve catalog diff` needs it to read the base")
    return subprocess.run([git, *args], cwd=cwd, capture_output=True, check=False)  # noqa: S603


def in_git(path: Path) -> bool:
    """Whether ``path`` (a folder) is inside a git working tree."""
    if shutil.which("git") is None or not path.exists():
        return False
    result = _git(path, "rev-parse", "--is-inside-work-tree")
    return result.returncode == 0 and result.stdout.strip() == b"true"


def catalog_at_ref(events_dir: Path, ref: str = "HEAD") -> Catalog:
    """Load the catalog as it was in ``events_dir`` at git ``ref`` (empty if absent there).

    The folder is read with ``git archive`` into a temporary folder, so the working tree
    and the index are never touched.
    """
    events_dir = events_dir.resolve()
    cwd = events_dir if events_dir.is_dir() else events_dir.parent
    if not in_git(cwd):
        raise UserError(f"{events_dir}: not inside a git repository; `nerve catalog diff` "
                        "compares against a git ref (run `git init` and commit the catalog)")
    top = _git(cwd, "rev-parse", "--show-toplevel")
    root = Path(top.stdout.decode().strip())
    verify = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if verify.returncode != 0:
        refs = _git(root, "for-each-ref", "--format=%(refname:short)",
                    "refs/heads", "refs/tags", "refs/remotes")
        known = refs.stdout.decode(errors="replace").split() if refs.returncode == 0 else []
        hint = did_you_mean(ref, known) if known else " (is there a commit yet?)"
        raise UserError(f"git ref {ref!r} not found in {root}{hint}")
    rel = events_dir.relative_to(root).as_posix()
    listing = _git(root, "ls-tree", "-d", "--name-only", ref, "--", rel)
    with tempfile.TemporaryDirectory(prefix="nerve-base-") as tmp:
        target = Path(tmp)
        if listing.stdout.strip():
            archive = _git(root, "archive", "--format=tar", ref, "--", rel)
            if archive.returncode != 0:
                raise UserError(f"git archive {ref} -- {rel}: "
                                f"{archive.stderr.decode(errors='replace').strip()}")
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(target, filter="data")
        base_dir = target / rel
        try:
            catalog = Catalog.load(base_dir)
        except CatalogError as exc:
            problems = [(loc.__class__(f"{ref}:{Path(str(loc.file)).relative_to(target)}",
                                       loc.line, loc.column), text)
                        for loc, text in exc.problems]
            raise CatalogError(problems) from exc
        return _rebase(catalog, target, ref)


def _rebase(catalog: Catalog, tmp_root: Path, ref: str) -> Catalog:
    """The same catalog, with file paths shown as ``REF:path`` instead of the temp folder."""
    specs = []
    for name in catalog.names():
        for spec in catalog.versions(name):
            file = spec.file
            if file is not None and file.is_relative_to(tmp_root):
                file = Path(f"{ref}:{file.relative_to(tmp_root).as_posix()}")
            specs.append(replace(spec, file=file))
    return Catalog(specs, catalog.groups, root=None)


def file_history(path: Path, limit: int = 20) -> list[Commit]:
    """The commits that touched ``path``, newest first (empty outside git)."""
    path = path.resolve()
    if not in_git(path.parent):
        return []
    result = _git(path.parent, "log", f"-n{limit}", "--follow",
                  "--format=%H%x1f%cs%x1f%an%x1f%s", "--", path.name)
    if result.returncode != 0:
        return []
    commits = []
    for line in result.stdout.decode(errors="replace").splitlines():
        parts = line.split("\x1f")
        if len(parts) == 4:
            commits.append(Commit(*parts))
    return commits
