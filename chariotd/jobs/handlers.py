"""The handler directory and the handlers in it: what may run (trust rule of
chariotd/trust.py: owned by root or the daemon's user, not writable by group or
others; each handler a regular file under the same rule with an execute bit; a name
starting with a dot never runs, so the state directory `.chariotd-jobs` and editor
files are never handlers).

`directory_problem` is the configuration check at start (exit 2 on a reason);
`handler_path` is asked again before every run, on the files as they are then.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional

from chariotd.kernel import trust
from chariotd.jobs.document import handler_name_problem
from chariotd.kernel.safe_open import kind_of

BECAUSE = "a job handler runs as root"
EXECUTE_BITS = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


class HandlerRefused(Exception):
    """A handler that may not run; str() says why (sent as the step's reason)."""


def directory_problem(path: str) -> Optional[str]:
    """Why the handler directory PATH cannot be used, or None."""
    try:
        return trust.untrusted_path(path, BECAUSE)
    except OSError as error:
        return f"{path}: {error.strerror or error}"


def handler_path(directory: str, name: str) -> str:
    """The path of handler NAME in DIRECTORY once both pass the trust rule, or
    HandlerRefused. Nobody but root or the daemon's user can change a trusted
    directory, so the path checked is the path run."""
    problem = handler_name_problem(name)
    if problem:
        raise HandlerRefused(problem)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise HandlerRefused(f"handler directory {directory}: {error.strerror}") from None
    try:
        problem = trust.untrusted(os.fstat(dir_fd), "the handler directory", BECAUSE)
        if problem:
            raise HandlerRefused(problem)
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as error:
            if error.errno == errno.ENOENT:
                raise HandlerRefused(f"no handler {name!r} in {directory}") from None
            raise HandlerRefused(f"handler {name!r}: {error.strerror}") from None
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(st.st_mode):
        raise HandlerRefused(f"handler {name!r} is {kind_of(st.st_mode)}, not a regular file")
    problem = trust.untrusted(st, f"handler {name!r}", BECAUSE)
    if problem:
        raise HandlerRefused(problem)
    if not st.st_mode & EXECUTE_BITS:
        raise HandlerRefused(f"handler {name!r} has no execute bit (mode "
                             f"{stat.S_IMODE(st.st_mode):04o})")
    return os.path.join(directory, name)
