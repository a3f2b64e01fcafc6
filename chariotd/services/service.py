"""One service at run time: its definition, its outfile on disk, its notify command."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from chariotd.kernel import pending
from chariotd.formats import FormatError
from chariotd.services import outfile
from chariotd.services.definitions import ServiceDefinition
from chariotd.services.reconcile import (DEV_NULL, UNREADABLE, ChangeRefused, read_outfile,
                                         reconcile)
from chariotd.shadow.patch import NO_CHANGE

log = logging.getLogger(__name__)


class Service:
    def __init__(self, definition: ServiceDefinition,
                 notify: Callable[..., None],
                 empty_array_deletes: bool = False):
        self.definition = definition
        self.notify = notify
        self.empty_array_deletes = empty_array_deletes
        self.initial = True
        self.held: Optional[str] = None  # why the outfile cannot be read, while it cannot

    def _hold(self, reason: str, known: bool):
        """The outfile cannot be read (REASON): log it once, then refuse the change
        until the shadow's state is KNOWN; return UNREADABLE to rewrite it from it."""
        d = self.definition
        if self.held != reason:
            log.warning("service %s: %s cannot be read (%s); held until it is rewritten "
                        "from the shadow's state", d.key, d.outfile, reason)
            self.held = reason
        if not known:
            raise ChangeRefused(f"{d.outfile} cannot be read ({reason}); the service is "
                                "held until the shadow is fetched")
        return UNREADABLE

    @property
    def key(self) -> str:
        return self.definition.key

    @property
    def writes_outfile(self) -> bool:
        d = self.definition
        return not d.ephemeraldata and d.outfile != DEV_NULL

    def apply(self, reported: Any, patch: Any = NO_CHANGE, replace: bool = False,
              known: bool = True) -> Any:
        """Apply PATCH: write the outfile when its content changes, notify as defined,
        and return the patch to report (or NO_CHANGE). Raises ChangeRefused.

        REPORTED: the shadow's reported value for the key; KNOWN: it is the shadow's
        (fetched, or being created), not a placeholder from before the first fetch.
        An outfile that cannot be read holds the service: nothing is written or
        reported while the shadow's state is unknown (the change is refused), and
        once it is known the outfile is rewritten from REPORTED plus PATCH."""
        d = self.definition
        on_disk = None
        if self.writes_outfile:
            try:
                on_disk = read_outfile(d, outfile.read_text(d.outfile), reported)
            except (outfile.Unreadable, FormatError) as error:
                on_disk = self._hold(str(error), known)
            else:
                self.held = None
        change = reconcile(d, on_disk=on_disk, reported=reported, patch=patch,
                           initial=self.initial, replace=replace,
                           empty_array_deletes=self.empty_array_deletes)
        interrupted = self.initial and self.writes_outfile and pending.is_marked(d.outfile)
        if change.write is not None:
            if change.notify:
                pending.mark(d.outfile)  # made durable by the outfile's directory fsync
            try:
                outfile.write_text(d.outfile, change.write)
            except OSError as error:
                raise ChangeRefused(f"cannot write {d.outfile}: {error}") from None
            log.info("service %s: wrote %s%s", d.key, d.outfile,
                     " from the shadow's state" if on_disk is UNREADABLE else "")
            if on_disk is UNREADABLE:
                self.held = None
        self.initial = False
        if interrupted and not change.notify:
            log.info("service %s: its notify command did not finish before chariotd "
                     "stopped; running it again", d.key)
        if change.notify or interrupted:  # the marker, if any, goes when it has finished
            self.notify(d, change.config, d.outfile if self.writes_outfile else None)
        return change.report
