"""Service definitions: one file per shadow key, loaded from a directory.

Three file kinds (README "Service definitions", EXTENSIONS E):

- `*.js`: the original's CommonJS form. `module.exports = { ... }` with an object
  literal is read as data (see `jsmodule`); anything else (a `validate` written in
  JavaScript, expressions, code around the export) is run in the embedded engine
  of the `js` extra (see `jsengine`), and refused, naming the extra, without it.
- `*.py`: the same names at module level (`key = 'firmware'`, `def validate(cfg):`),
  run once at load time; they are trusted local configuration.
- `*.json`: the plain object.

Every definition file, whatever its kind, and its directory must be owned by root
or the daemon's user and not writable by group or others (sshd's StrictModes; see
`_untrusted`); a symbolic link or anything but a regular file is not read. Such a
file is an error like any other: skipped with its reason, the rest still load.

Other files are ignored, and so are hidden files (`.name`), which covers editor
swap and lock files; backups such as `name.js~` or `name.js.bak` do not end in a
known suffix. Files load in filename order. When two definitions claim the same
key, the first in that order is kept and each later one is an error naming the
first. Keys a `.js` or `.json` definition holds beyond the known ones are kept
in `unknown_keys` (the caller logs a warning) and the definition still loads;
in `.py` files other module-level names are the module's own business.
"""

from __future__ import annotations

import errno
import inspect
import math
import os
import stat
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from chariotd.formats.json import kind_of as json_kind

from .. import formats
from ..formats.json import load as load_json
from ..kernel import trust
from . import jsengine
from .jsmodule import JSModuleError, function_keys, read_exported_object

DEFAULT_INFORMAT = "JSON"
DEFAULT_TIMEOUT = 10.0
SUFFIXES = (".js", ".py", ".json")

REQUIRED = ("key", "notifycmd")
REQUIRED_UNLESS_EPHEMERAL = ("outfile", "outformat")
OPTIONAL = ("informat", "outkeys", "notifykeys", "initialnotify", "validate",
            "ephemeraldata", "timeout")
KNOWN_KEYS = REQUIRED + REQUIRED_UNLESS_EPHEMERAL + OPTIONAL

JS_VALIDATE_REFUSED = ("validate written in JavaScript needs a JavaScript engine: "
                       f"{jsengine.EXTRA} (or use a .py definition)")


class DefinitionError(ValueError):
    """A service definition cannot be used; the message says why."""


@dataclass(frozen=True)
class ServiceDefinition:
    """One service: which shadow key it owns, where its data goes, whom to tell."""

    key: str
    notifycmd: str
    source: str  # the file it was loaded from
    outfile: Optional[str] = None  # None only when ephemeraldata
    outformat: Optional[str] = None  # None only when ephemeraldata
    informat: str = DEFAULT_INFORMAT
    outkeys: Optional[Tuple[str, ...]] = None  # None: every subkey
    notifykeys: Optional[Tuple[str, ...]] = None  # None: any change notifies
    initialnotify: bool = False
    validate: Optional[Callable[[Any], Any]] = None
    ephemeraldata: bool = False
    timeout: float = DEFAULT_TIMEOUT  # seconds for notifycmd
    unknown_keys: Tuple[str, ...] = ()  # ignored keys, for a warning


# ---------------------------------------------------------------- checking values

def _string(fields: Mapping[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str):
        raise DefinitionError(f"{name} must be a string, not {json_kind(value)}")
    if "\0" in value:
        raise DefinitionError(f"{name} must not contain a NUL character")
    return value


def _boolean(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name, False)
    if not isinstance(value, bool):
        raise DefinitionError(f"{name} must be true or false, not {json_kind(value)}")
    return value


def _key_list(fields: Mapping[str, Any], name: str) -> Optional[Tuple[str, ...]]:
    if name not in fields:
        return None
    value = fields[name]
    if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) for k in value):
        raise DefinitionError(f"{name} must be an array of strings, not {json_kind(value)}")
    return tuple(value)


def _format(fields: Mapping[str, Any], name: str) -> str:
    value = _string(fields, name)
    try:
        formats.get(value)
    except formats.FormatError as e:
        raise DefinitionError(f"{name}: {e}") from None
    return value



def definition_from_fields(fields: Mapping[str, Any], source: str,
                           report_unknown: bool = True) -> ServiceDefinition:
    """Check FIELDS (the names a definition file gave) and build the definition.

    REPORT_UNKNOWN: put keys beyond the known ones in `unknown_keys`
    (for .js and .json; a .py module has names of its own).
    """
    for name in REQUIRED:
        if name not in fields:
            raise DefinitionError(f"missing key '{name}'")
    ephemeral = _boolean(fields, "ephemeraldata")
    if not ephemeral:
        for name in REQUIRED_UNLESS_EPHEMERAL:
            if name not in fields:
                raise DefinitionError(f"missing key '{name}' (needed unless ephemeraldata is true)")

    key = _string(fields, "key")
    if not key or "." in key or "/" in key:
        raise DefinitionError(f"key {key!r} must be non-empty without '.' or '/' "
                              "(update files are named key or key.suffix)")
    notifycmd = _string(fields, "notifycmd")
    if not notifycmd.strip():
        raise DefinitionError("notifycmd must not be empty")

    outfile = None
    if "outfile" in fields:
        outfile = _string(fields, "outfile")
        if not os.path.isabs(outfile):
            raise DefinitionError(f"outfile must be a full path, not {outfile!r}")
    outformat = _format(fields, "outformat") if "outformat" in fields else None
    informat = _format(fields, "informat") if "informat" in fields else DEFAULT_INFORMAT

    timeout = fields.get("timeout", DEFAULT_TIMEOUT)
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout) or timeout <= 0):
        raise DefinitionError(f"timeout must be a positive number of seconds, not {timeout!r}")

    validate = fields.get("validate")
    if "validate" in fields:
        if not callable(validate):
            raise DefinitionError(f"validate must be a function, not {json_kind(validate)}")
        try:
            inspect.signature(validate).bind(None)
        except TypeError:
            raise DefinitionError("validate must take one argument (the configuration)") from None
        except ValueError:  # pragma: no cover - builtins without a signature
            pass

    unknown = tuple(k for k in fields if k not in KNOWN_KEYS) if report_unknown else ()
    return ServiceDefinition(
        key=key,
        notifycmd=notifycmd,
        source=source,
        outfile=outfile,
        outformat=outformat,
        informat=informat,
        outkeys=_key_list(fields, "outkeys"),
        notifykeys=_key_list(fields, "notifykeys"),
        initialnotify=_boolean(fields, "initialnotify"),
        validate=validate,
        ephemeraldata=ephemeral,
        timeout=float(timeout),
        unknown_keys=unknown,
    )


# ---------------------------------------------------------------- trusting files

# A definition names a command the daemon runs as root (and a .py one is run at
# load), so, like sshd's StrictModes, every definition file and its directory must
# be owned by root or the daemon's user and not writable by group or others;
# otherwise whoever can write there could choose what root runs. The same rule
# holds for .js and .json (data, but notifycmd is code) as for .py.
MAX_DEFINITION_BYTES = 1 << 20  # a definition is a few hundred bytes

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


trusted_owners = trust.trusted_owners  # root and the daemon's user
BECAUSE = "a definition names a command run as root"


def _untrusted(st: os.stat_result, what: str) -> Optional[str]:
    """Why a file (or directory) with status ST is not trusted, or None when it is:
    the rule and wording of kernel/trust.py, shared with the job handlers."""
    return trust.untrusted(st, what, BECAUSE)


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    if stat.S_ISLNK(mode):
        return f"not a regular file: {kind} (definitions are not read through links)"
    return f"not a regular file: {kind}"


def _directory_problem(dir_fd: int) -> Optional[str]:
    return _untrusted(os.fstat(dir_fd), "its directory")


def _open_directory(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise DefinitionError(f"{path}: cannot list service definitions: {e.strerror}") from None


def _read_trusted(dir_fd: int, name: str) -> str:
    """The text of file NAME in the directory open at DIR_FD, once its owner and mode
    are checked on the very fd that is read (no race between the check and the load).

    A symbolic link is never followed and nothing but a regular file is opened, so a
    FIFO or device planted there cannot hang or disturb the load."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except OSError as e:
        raise DefinitionError(f"cannot read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DefinitionError(_not_regular(st.st_mode))
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:  # made a link since the lstat
            raise DefinitionError(_not_regular(stat.S_IFLNK)) from None
        raise DefinitionError(f"cannot read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DefinitionError(_not_regular(st.st_mode))
        problem = _untrusted(st, "the file")
        if problem:
            raise DefinitionError(problem)
        data = _read_at_most(fd, MAX_DEFINITION_BYTES)
    except OSError as e:
        raise DefinitionError(f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_DEFINITION_BYTES:
        raise DefinitionError(f"larger than {MAX_DEFINITION_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DefinitionError(f"not UTF-8 text: {e.reason} at byte {e.start}") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to LIMIT + 1 bytes from FD (one more than LIMIT tells it was larger)."""
    chunks: List[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------- reading files

def _fields_from_js(text: str, path: str) -> Dict[str, Any]:
    """The members a .js definition exports: read as data when it is a plain object
    literal (no engine needed), else from running it in the JavaScript engine."""
    try:
        return read_exported_object(text)
    except JSModuleError as e:
        unread = e
    try:
        fields, _ = jsengine.load_module(text, path)
    except jsengine.EngineMissing:
        if "validate" in (unread.function_keys or function_keys(text)):
            raise DefinitionError(JS_VALIDATE_REFUSED) from None
        raise DefinitionError(f"{unread}; running it as JavaScript needs a JavaScript "
                              f"engine: {jsengine.EXTRA}") from None
    except jsengine.JSError as e:
        raise DefinitionError(f"running it failed: {e}") from None
    return fields


def _fields_from_json(text: str) -> Dict[str, Any]:
    try:
        fields = load_json(text)
    except formats.FormatError as e:
        raise DefinitionError(f"not valid JSON: {e}") from None
    if not isinstance(fields, dict):
        raise DefinitionError(f"must hold a JSON object, not {json_kind(fields)}")
    return fields


def _fields_from_py(text: str, path: str) -> Dict[str, Any]:
    # Compiled here rather than imported, so no __pycache__ lands in the
    # service directory and the module never enters sys.modules.
    stem = os.path.splitext(os.path.basename(path))[0]
    module = types.ModuleType(f"chariotd_service_{stem}")
    module.__file__ = path
    try:
        code = compile(text, path, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except SyntaxError as e:
        raise DefinitionError(f"SyntaxError: {e.msg} (line {e.lineno})") from None
    except (Exception, SystemExit) as e:
        raise DefinitionError(f"running it failed: {type(e).__name__}: {e}") from None
    return {name: module.__dict__[name] for name in KNOWN_KEYS if name in module.__dict__}


def load_file(path: str) -> ServiceDefinition:
    """The definition in PATH (a .js, .py or .json file); DefinitionError if unusable,
    including when PATH or its directory is not trusted (see `_untrusted`)."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    dir_fd = _open_directory(directory)
    try:
        problem = _directory_problem(dir_fd)
        if problem:
            raise DefinitionError(problem)
        return _load_at(dir_fd, os.path.basename(path), path)
    finally:
        os.close(dir_fd)


def _check_suffix(path: str) -> None:
    if not path.endswith(SUFFIXES):
        raise DefinitionError(f"not a service definition file (expected {', '.join(SUFFIXES)})")


def _load_at(dir_fd: int, name: str, path: str) -> ServiceDefinition:
    """The definition in file NAME of the directory open at DIR_FD (PATH names it)."""
    _check_suffix(path)
    text = _read_trusted(dir_fd, name)
    suffix = os.path.splitext(path)[1]
    if suffix == ".js":
        return definition_from_fields(_fields_from_js(text, path), path)
    if suffix == ".json":
        return definition_from_fields(_fields_from_json(text), path)
    return definition_from_fields(_fields_from_py(text, path), path, report_unknown=False)


def is_definition_name(name: str) -> bool:
    """Whether a file called NAME in a service directory is loaded at all."""
    return not name.startswith(".") and name.endswith(SUFFIXES)


def load_directory(path: str) -> Tuple[List[ServiceDefinition], List[Tuple[str, str]]]:
    """Every usable definition in directory PATH, and (file path, reason) for the rest.

    Files load in filename order; a key already claimed by an earlier file makes
    the later file an error. Errors never stop the other files from loading.
    Raises DefinitionError only when the directory itself cannot be listed.
    """
    path = os.fspath(path)
    dir_fd = _open_directory(path)
    try:
        return _load_names(dir_fd, path)
    finally:
        os.close(dir_fd)


def _load_names(dir_fd: int, path: str) -> Tuple[List[ServiceDefinition],
                                                 List[Tuple[str, str]]]:
    try:
        names = sorted(name for name in os.listdir(dir_fd) if is_definition_name(name))
    except OSError as e:
        raise DefinitionError(f"{path}: cannot list service definitions: {e.strerror}") from None
    # A directory others may write to makes every file in it untrusted: each is
    # skipped with the directory's reason, so each still gets its own log line.
    directory_problem = _directory_problem(dir_fd)
    definitions: List[ServiceDefinition] = []
    errors: List[Tuple[str, str]] = []
    owners: Dict[str, str] = {}
    for name in names:
        file_path = os.path.join(path, name)
        try:
            if directory_problem:
                raise DefinitionError(directory_problem)
            definition = _load_at(dir_fd, name, file_path)
        except DefinitionError as e:
            errors.append((file_path, str(e)))
            continue
        if definition.key in owners:
            errors.append((file_path, f"key '{definition.key}' is already defined by "
                                      f"{owners[definition.key]}"))
            continue
        owners[definition.key] = file_path
        definitions.append(definition)
    return definitions, errors
