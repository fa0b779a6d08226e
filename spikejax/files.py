"""Files spikejax writes outside orbax: whole or absent, and never through a symlink.

  refuse_symlink(path)               UsageError when `path` is a symlink (it is never followed)
  atomic_write(path, write, mode)    write(f) into a temporary file beside `path`, then rename it over `path`
  atomic_write_json(path, obj)       the same for JSON
  open_append(path)                  an append-only text file (metrics.jsonl), opened without following links

A reader, a crash, a signal or a full disk sees the old file or the new one, never half of one; the
temporary file is removed whatever happens.
"""
from __future__ import annotations

import json
import os
import tempfile

from spikejax.errors import UsageError


def refuse_symlink(path: str) -> None:
    """UsageError naming `path` and its target when it is a symlink: spikejax never writes through one."""
    if os.path.islink(path):
        raise UsageError(f"{path} is a symlink (to {os.readlink(path)}); spikejax never writes through links: "
                         "remove it and rerun")


def atomic_write(path: str, write, mode: str = "w") -> None:
    """Calls `write(f)` on a temporary file in `path`'s folder (created exclusively) and renames it over
    `path`. Refuses a symlink at `path` (see `refuse_symlink`)."""
    refuse_symlink(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_json(path: str, obj) -> None:
    """JSON (indent 1) written by `atomic_write`."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1))


def open_append(path: str):
    """`path` opened for appending text, created if missing; a symlink there is refused, never followed."""
    refuse_symlink(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if os.path.islink(path):  # made a symlink between the check and the open
            refuse_symlink(path)
        raise error
    return os.fdopen(fd, "a")
