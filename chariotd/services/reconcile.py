"""What one service's change amounts to (pure): the configuration it leads to, the
outfile text to write, whether to notify, and the patch to report.

The service's current configuration is its outfile (the outfile wins over the
shadow's reported value). With `outkeys`, the outfile holds only those subkeys, so
the rest comes from the shadow's reported value. A `/dev/null` outfile is never read
or written: the reported value is the configuration. An ephemeral service keeps
nothing: a change only runs its notify command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from chariotd import formats
from chariotd.formats import FormatError
from chariotd.services.definitions import ServiceDefinition
from chariotd.shadow.patch import NO_CHANGE, apply, diff, normalise
from chariotd.shadow.values import copy_json, values_equal

DEV_NULL = "/dev/null"


class ChangeRefused(Exception):
    """The change was refused (validate, or a value the outformat cannot write)."""


@dataclass(frozen=True)
class Change:
    config: Any                 # the configuration after the change
    write: Optional[str]        # outfile text to write, None to leave the outfile alone
    notify: bool
    report: Any                 # patch for reported[key], or NO_CHANGE


def pick(value: Any, keys) -> Any:
    if keys is None or not isinstance(value, dict):
        return value
    return {key: value[key] for key in keys if key in value}


def render(format_name: str, value: Any) -> str:
    if value is None:
        value = "" if format_name == "PLAINTEXT" else {}
    return formats.get(format_name).stringify(value)


def parse_outfile(definition: ServiceDefinition, text: Optional[str]) -> Any:
    """The configuration an outfile's TEXT holds; raises FormatError when unreadable."""
    if text is None:
        return None
    return formats.get(definition.outformat).parse(text)


def _notify_keys_changed(keys, old: Any, new: Any) -> bool:
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    return any(not values_equal(old.get(k, NO_CHANGE), new.get(k, NO_CHANGE)) for k in keys)


def reconcile(definition: ServiceDefinition, *, outfile_text: Optional[str], current: Any,
              reported: Any, patch: Any = NO_CHANGE, initial: bool = False,
              replace: bool = False, empty_array_deletes: bool = False) -> Change:
    """The outcome of applying PATCH (NO_CHANGE: nothing asked) to the service.

    OUTFILE_TEXT/CURRENT: the outfile's text and what it parses to (None if missing);
    REPORTED: the shadow's reported value for the key; INITIAL: first time since start;
    REPLACE: PATCH is the whole new configuration (a default shadow)."""
    real_outfile = not definition.ephemeraldata and definition.outfile != DEV_NULL
    if definition.ephemeraldata or replace:
        base = None
    elif not real_outfile:
        base = copy_json(reported)
    elif definition.outkeys is not None and (reported is not None or current is not None):
        base = apply(reported if isinstance(reported, dict) else {}, current or {})
    else:
        base = current
    config = base if patch is NO_CHANGE else apply(base, normalise(patch, empty_array_deletes))
    if definition.validate is not None and patch is not NO_CHANGE:
        try:
            config = normalise(definition.validate(copy_json(config)), empty_array_deletes)
        except Exception as error:  # the integrator's code may raise anything
            raise ChangeRefused(f"validate refused the change: {error}") from None
        config = apply(None, config)
    first_notify = initial and definition.initialnotify
    if definition.ephemeraldata:
        return Change(config, None, patch is not NO_CHANGE or first_notify, NO_CHANGE)
    picked = pick(config, definition.outkeys)
    old_picked = pick(current if real_outfile else reported, definition.outkeys)
    if real_outfile and outfile_text is None:
        changed = picked is not None
    elif real_outfile and current is None:
        changed = True  # the outfile cannot be read back: rewrite it
    else:
        changed = not values_equal(picked, old_picked)
    text = None
    if changed and real_outfile:
        try:
            text = render(definition.outformat, picked)
        except FormatError as error:
            raise ChangeRefused(str(error)) from None
    notify = first_notify or changed and (
        initial or definition.notifykeys is None
        or _notify_keys_changed(definition.notifykeys, old_picked, picked))
    return Change(config, text, notify, diff(reported, config))
