"""One service at run time: its definition, its outfile on disk, its notify command."""

from __future__ import annotations

import logging
from typing import Any, Callable

from chariotd import pending
from chariotd.formats import FormatError
from chariotd.services import outfile
from chariotd.services.definitions import ServiceDefinition
from chariotd.services.reconcile import ChangeRefused, parse_outfile, reconcile, DEV_NULL
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

    @property
    def key(self) -> str:
        return self.definition.key

    @property
    def writes_outfile(self) -> bool:
        d = self.definition
        return not d.ephemeraldata and d.outfile != DEV_NULL

    def apply(self, reported: Any, patch: Any = NO_CHANGE, replace: bool = False) -> Any:
        """Apply PATCH: write the outfile when its content changes, notify as defined,
        and return the patch to report (or NO_CHANGE). Raises ChangeRefused."""
        d = self.definition
        text = current = None
        if self.writes_outfile:
            try:
                text = outfile.read_text(d.outfile)
            except outfile.Unreadable as error:  # TODO(#12): hold the service instead
                log.warning("service %s: %s; treated as unreadable", d.key, error)
            try:
                current = parse_outfile(d, text)
            except FormatError as error:
                log.warning("service %s: %s cannot be read back (%s); it will be rewritten",
                            d.key, d.outfile, error)
        change = reconcile(d, outfile_text=text, current=current, reported=reported,
                           patch=patch, initial=self.initial, replace=replace,
                           empty_array_deletes=self.empty_array_deletes)
        interrupted = self.initial and self.writes_outfile and pending.is_marked(d.outfile)
        if change.write is not None:
            if change.notify:
                pending.mark(d.outfile)  # made durable by the outfile's directory fsync
            try:
                outfile.write_text(d.outfile, change.write)
            except OSError as error:
                raise ChangeRefused(f"cannot write {d.outfile}: {error}") from None
            log.info("service %s: wrote %s", d.key, d.outfile)
        self.initial = False
        if interrupted and not change.notify:
            log.info("service %s: its notify command did not finish before chariotd "
                     "stopped; running it again", d.key)
        if change.notify or interrupted:  # the marker, if any, goes when it has finished
            self.notify(d, change.config, d.outfile if self.writes_outfile else None)
        return change.report
