"""What a layout says, as one short hash: the content of the template files a render would use.

The canary (``platforms[].addresses.canary``) holds the mails of a *new mail configuration*;
editing a layout's subject or body in the operator's ``[mail] layouts_dir`` changes what every
mail says as much as naming another layout does, so the files' content belongs to that
configuration. The files are resolved exactly as ``LayoutStore`` renders them (the operator's
folder when it has the layout, else the shipped one); content, not mtimes, so touching a file or
copying the folder elsewhere does not start a new canary.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from syncd.core.errors import ConfigError
from syncd.render.context import FILES
from syncd.render.store import LayoutStore


def layouts_digest(layouts_dir: str | os.PathLike[str] | None, names: Iterable[str]) -> str:
    """sha256 (16 hex digits) over each named layout's files, in name order. A layout that is
    missing, or a layouts_dir that is gone, hashes as such (the run itself reports it)."""
    digest = hashlib.sha256()
    try:
        store: LayoutStore | None = LayoutStore(layouts_dir)
    except ConfigError:
        store = None
    for name in sorted(set(names)):
        digest.update(f"\0layout {name}\0".encode())
        folder = store.folder(name) if store is not None else None
        if folder is None:
            digest.update(b"missing")
            continue
        for file in FILES:
            entry = folder / file
            digest.update(f"\0{file}\0".encode())
            digest.update(entry.read_bytes() if entry.is_file() else b"\0absent")
    return digest.hexdigest()[:16]
