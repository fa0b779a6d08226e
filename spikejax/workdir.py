"""A run's folder: one run at a time (an flock), files written whole (temporary file + rename), and the
process-0 log.

  log(message)                     prints on process 0 only
  atomic_write_json(path, obj)     a reader sees the old file or the new one, never half of one (spikejax.files)
  WorkdirLock(workdir)             one run per workdir: an flock on <workdir>/.lock holding the owner's pid
  lock_workdir(workdir)            the lock for a block, agreed by every process of a multi-process run
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket

import jax
import jax.numpy as jnp

from spikejax.errors import UsageError, WorkdirLockedError
from spikejax.files import atomic_write_json, refuse_symlink  # noqa: F401 (atomic_write_json: re-exported)


def log(message: str) -> None:
    """Prints on process 0 only."""
    if jax.process_index() == 0:
        print(message, flush=True)


class WorkdirLock:
    """Exclusive use of a workdir by one run (one process: multi-process runs lock on process 0).

    An advisory `flock` on <workdir>/.lock. The kernel drops it when its process dies, however it dies, so
    the lock of a dead process is simply taken over (`stale_owner` then names it); the file holds the
    owner's host and pid for the message. A second run raises WorkdirLockedError naming the workdir and the
    holder. Creates the workdir, and removes it again on release if the run left nothing else in it. A
    `.lock` that is a symlink is refused (UsageError), never followed.
    """

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, ".lock")
        self.file = None
        self.created = False
        self.stale_owner: str | None = None

    def acquire(self) -> WorkdirLock:
        self.created = not os.path.isdir(self.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        refuse_symlink(self.path)
        try:  # O_NOFOLLOW: a symlink put there after the check is not followed either
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            raise UsageError(f"{self.path} is a symlink; spikejax never follows it: remove it and rerun") from None
        self.file = os.fdopen(fd, "r+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            raise WorkdirLockedError(f"workdir {self.workdir} is in use by {holder}; wait for it to finish, stop "
                                     "it, or choose another --workdir") from None
        self.file.seek(0)
        self.stale_owner = self.file.read().strip() or None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self.file.flush()
        return self

    def release(self) -> None:
        """Clears the owner line (a non-empty line found by the next run means its owner died holding the
        lock) and unlocks. The file stays: deleting it could let two runs lock two different files."""
        if self.file is None:
            return
        self.file.seek(0)
        self.file.truncate()
        self.file.flush()
        if self.created and os.listdir(self.workdir) == [".lock"]:
            os.remove(self.path)  # a failed start leaves no empty workdir behind
            os.rmdir(self.workdir)
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
        self.file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@contextlib.contextmanager
def lock_workdir(workdir: str):
    """Process 0 holds the workdir's lock for the block; with several processes all of them learn whether
    it succeeded."""
    lock, error = WorkdirLock(workdir), None
    if jax.process_index() == 0:
        try:
            lock.acquire()
        except WorkdirLockedError as caught:
            error = caught
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        if not multihost_utils.broadcast_one_to_all(jnp.int32(error is None)):
            raise error or WorkdirLockedError(f"workdir {workdir} is in use by another run (seen by process 0)")
    elif error is not None:
        raise error
    if lock.stale_owner:
        log(f"took over the lock of {workdir} from {lock.stale_owner}, which is no longer running")
    try:
        yield lock
    finally:
        lock.release()
