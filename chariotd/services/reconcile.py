"""What one service's change amounts to (pure): the configuration it leads to, the
outfile text to write, whether to notify, and the patch to report.

The service's current configuration is its outfile (the outfile wins over the
shadow's reported value). An outfile is compared in the form its format holds
(`held`: SHELL's flat variables, JSON's value without nulls, PLAINTEXT's string),
never through a guess of what it was written from: when it holds what the reported
value would write, it stands for the reported value itself (so `server` and
`server_port` in a SHELL file stay what the shadow says); otherwise (edited
locally) for what its format reads back. With `outkeys`, the outfile holds only
those subkeys, so the rest comes from the shadow's reported value. A `/dev/null`
outfile is never read or written: the reported value is the configuration. An
ephemeral service keeps nothing: a change only runs its notify command.

An outfile that cannot be read (`read_outfile` raises FormatError; the caller also
has I/O errors and non-UTF-8 text) is never taken as empty configuration: the
caller holds the service until the shadow's state is known, then `reconcile` with
`on_disk=UNREADABLE` rewrites it from the reported value (plus the change asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

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


@dataclass(frozen=True)
class OnDisk:
    """A readable outfile: what it holds (its format's `held` form) and the
    configuration it stands for."""
    held: Any
    value: Any


class _Unreadable:
    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE = _Unreadable()  # on_disk for an outfile to rewrite from the reported value


def pick(value: Any, keys) -> Any:
    if keys is None or not isinstance(value, dict):
        return value
    return {key: value[key] for key in keys if key in value}


def _writable(format_name: str, value: Any) -> Any:
    if value is None:
        return "" if format_name == "PLAINTEXT" else {}
    return value


def render(format_name: str, value: Any) -> str:
    return formats.get(format_name).stringify(_writable(format_name, value))


def held(format_name: str, value: Any) -> Any:
    """What an outfile of FORMAT_NAME holds for VALUE; FormatError when none can."""
    return formats.get(format_name).held(_writable(format_name, value))


def same_held(a: Any, b: Any) -> bool:
    return values_equal(a, b)


def read_outfile(definition: ServiceDefinition, text: Optional[str],
                 reported: Any) -> Optional[OnDisk]:
    """The outfile's TEXT (None: there is none) as an OnDisk; FormatError when its
    format cannot read it, or reads something it could not write back."""
    if text is None:
        return None
    module = formats.get(definition.outformat)
    on_disk = module.read_held(text)
    mine = pick(reported, definition.outkeys)
    try:
        if same_held(held(definition.outformat, mine), on_disk):
            return OnDisk(on_disk, copy_json(mine))
    except FormatError:
        pass  # the reported value is nothing this outfile could hold: not what it holds
    value = module.parse(text)
    module.held(value)  # what it stands for must be writable back (JSON `null` is not)
    return OnDisk(on_disk, value)


def _notify_keys_changed(keys, old: Any, new: Any) -> bool:
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    return any(not values_equal(old.get(k, NO_CHANGE), new.get(k, NO_CHANGE)) for k in keys)


def reconcile(definition: ServiceDefinition, *,
              on_disk: Union[OnDisk, _Unreadable, None], reported: Any,
              patch: Any = NO_CHANGE, initial: bool = False, replace: bool = False,
              empty_array_deletes: bool = False) -> Change:
    """The outcome of applying PATCH (NO_CHANGE: nothing asked) to the service.

    ON_DISK: the outfile as `read_outfile` gave it (None: missing), or UNREADABLE to
    rewrite it from REPORTED (the shadow's reported value for the key); INITIAL:
    first time since start; REPLACE: PATCH is the whole new configuration (a default
    shadow). Raises ChangeRefused when validate refuses or the outfile cannot hold
    the result (nothing is written and nothing reported then)."""
    real_outfile = not definition.ephemeraldata and definition.outfile != DEV_NULL
    unreadable = real_outfile and on_disk is UNREADABLE
    current = on_disk.value if isinstance(on_disk, OnDisk) else None
    if definition.ephemeraldata or replace:
        base = None
    elif not real_outfile or unreadable:
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
    text = None
    if real_outfile:
        try:
            now_held = held(definition.outformat, picked)
            if unreadable:
                changed = True  # rewritten from the shadow's state
            elif on_disk is None:
                changed = picked is not None
            else:
                changed = not same_held(now_held, on_disk.held)
            if changed:
                text = render(definition.outformat, picked)
        except FormatError as error:
            raise ChangeRefused(str(error)) from None
    else:
        changed = not values_equal(picked, old_picked)
    notify = first_notify or changed and (
        initial or definition.notifykeys is None
        or _notify_keys_changed(definition.notifykeys, old_picked, picked))
    return Change(config, text, notify, diff(reported, config))
