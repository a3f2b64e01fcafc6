"""SHELL: the service's value as shell variable assignments, safe to `source`.

Writing (`stringify`), as the original chariotd README shows:

- nested objects are flattened, the levels joined with `_`:
  `{"nested": {"x": {"yy": 42}}}` becomes `nested_x_yy='42'`;
- arrays become `name=('a' 'b')` (bash only: dash stops at them with a syntax
  error, before running anything); an empty array is `name=()`;
- every value is single-quoted: strings as they are, booleans `'true'`/`'false'`,
  numbers as JavaScript prints them (`'1'` for 1.0, `'-64.2'`, `'1e+21'`);
- object members whose value is null are left out; an empty object writes nothing;
- lines are sorted, one assignment per line (a value may span lines);
- EXCEPT single quotes: the original wrote `'it\\'s'`, which no shell reads back;
  we write `'it'\\''s'` (close, escaped quote, reopen).

Refused with FormatError, never written: a top-level value that is not an
object, a value nested deeper than MAX_DEPTH, keys that are not shell names
(`[A-Za-z_][A-Za-z0-9_]*` per level), names the shell or the programs a sourcing
script starts give a meaning to (`PATH`, `IFS`, `PS4`, `BASH_ENV`, `LD_*`,
`GCONV_PATH`, `PYTHONPATH`, `NODE_OPTIONS`, `TMPDIR` ..., see RESERVED_NAMES),
two keys flattening to the same name, NUL characters and
lone surrogates in values, NaN and infinities, arrays holding null, arrays or
objects. Inside single quotes nothing is special to sh or bash, so the output
runs nothing whatever the values hold.

Reading (`parse`), the reverse, a bit more lenient with the quotes: values may be
single-quoted (the original's `\\'` inside single quotes is accepted too),
double-quoted, unquoted with backslash escapes, or any mix of these in one word;
blank lines, `#` comments, `;` between assignments and a leading `export` are
accepted. Expansions (`$name`, `$(...)`, backticks) are refused, not performed.
`parse` returns what the original returned: names split at `_` back into nested
objects, `'true'`/`'false'` as booleans, a value spelled exactly as `stringify`
prints a number as that number, anything else as a string (an empty value is
the empty string, never null). `parse_assignments` gives the flat view instead:
each name with its string, or list of strings for an array, exactly as a shell
sees them. A SHELL file holds no nesting, so the file is compared in that flat
form (`held(value)` against `read_held(text)`): `server` and `server_port` are two
ordinary names, written and read back whatever nesting `parse` guesses for them.
Where a statement reads both the shell's way and the original's `\\'`
way, the shell's way wins, so everything `stringify` writes reads back exactly.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Dict, List, Tuple, Union

from chariotd.shadow.values import MAX_DEPTH, deeper_than

from .errors import FormatError

NAME = "SHELL"

ShellValue = Union[str, List[str]]

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Names a SHELL outfile never sets, defined once. Outfiles are sourced by scripts,
# often after `set -a`, and read as systemd `EnvironmentFile=`s, so a name that any
# shell, loader or interpreter reads from its variables or environment would let
# whoever controls a value (the cloud, or the owner of an update file) change how
# the sourcing script or the programs it starts run, as root. Families:
RESERVED_NAMES = frozenset("""
    _ BASHOPTS BASHPID CDPATH COMPREPLY COPROC DIRSTACK ENV EPOCHREALTIME
    EPOCHSECONDS EUID EXECIGNORE FUNCNAME FUNCNEST GLOBIGNORE GROUPS HISTCMD
    HISTFILE HOME IFS IGNOREEOF INPUTRC LANG LINENO MAIL MAILCHECK MAILPATH
    MAPFILE OLDPWD OPTARG OPTERR OPTIND PATH PIPESTATUS POSIXLY_CORRECT PPID
    PROMPT_COMMAND PS0 PS1 PS2 PS3 PS4 PWD RANDOM REPLY SECONDS SHELL SHELLOPTS
    SHLVL SRANDOM TIMEFORMAT TMOUT UID histchars
""".split()) | frozenset("""
    GCONV_PATH GETCONF_DIR HOSTALIASES LANGUAGE LOCALDOMAIN LOCPATH NIS_PATH NLSPATH
    RESOLV_HOST_CONF RES_OPTIONS TZ TZDIR
    PERL5LIB PERL5OPT PERLLIB PERLIO PERL5DB CLASSPATH JAVA_TOOL_OPTIONS
    _JAVA_OPTIONS JDK_JAVA_OPTIONS RUBYLIB RUBYOPT PHPRC PHP_INI_SCAN_DIR TCLLIBPATH
    TMPDIR TMP TEMP TEMPDIR SSL_CERT_FILE SSL_CERT_DIR OPENSSL_CONF OPENSSL_ENGINES
    CURL_CA_BUNDLE REQUESTS_CA_BUNDLE EDITOR VISUAL PAGER BROWSER TERMINFO
    http_proxy https_proxy ftp_proxy all_proxy no_proxy
    HTTP_PROXY HTTPS_PROXY FTP_PROXY ALL_PROXY NO_PROXY
    NOTIFY_SOCKET LISTEN_FDS LISTEN_PID LISTEN_FDNAMES WATCHDOG_USEC WATCHDOG_PID
    CREDENTIALS_DIRECTORY INVOCATION_ID
""".split())
# Name families, by prefix:
RESERVED_PREFIXES = (
    "BASH_", "COMP_", "READLINE_",  # bash's own (BASH_ENV runs a file; BASH_FUNC_ defines functions)
    "LC_",                          # locale: LC_ALL and friends load locale files, change parsing
    "LD_", "MALLOC_", "GLIBC_",     # the dynamic loader and libc tunables: LD_PRELOAD, LD_LIBRARY_PATH
    "PYTHON", "NODE_", "NPM_CONFIG_", "LUA_", "RUBY", "GEM_", "BUNDLE_",  # interpreters'
    "PERL", "JAVA_", "DOTNET_", "COMPlus_", "GIT_",  # startup hooks, module paths, options
    "XDG_", "DBUS_", "SYSTEMD_",    # where programs find config, sockets, units
    "SSH_", "GPG_", "KRB5",         # credential agents and their config
)
# (ENV, BASH_ENV, PS4, PROMPT_COMMAND run code in the shell; PATH, IFS, CDPATH,
# SHELLOPTS, POSIXLY_CORRECT change how it parses and finds commands; read-only
# or special names such as UID, RANDOM, LINENO and `_` abort the script or are not
# read back; GCONV_PATH, LOCPATH, NLSPATH, HOSTALIASES, RES_OPTIONS, TZ make libc
# load files of the writer's choosing; PERL5OPT, NODE_OPTIONS, PYTHONPATH,
# JAVA_TOOL_OPTIONS, RUBYOPT and the like run code in any interpreter started
# afterwards; TMPDIR and the proxies redirect files and traffic; NOTIFY_SOCKET and
# LISTEN_* speak for systemd.)


def is_reserved(name: str) -> bool:
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


# ---------------------------------------------------------------- numbers

def js_number(number: Union[int, float]) -> str:
    """NUMBER as JavaScript's String(number) prints it (ints: all their digits)."""
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise FormatError(f"SHELL: {number!r} is not a number")
    if isinstance(number, int):
        return str(number)
    if not math.isfinite(number):
        raise FormatError(f"SHELL: {number!r} is not a number the shadow can hold")
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    # repr gives the shortest digits that read back as the same float, as JS does.
    _, digit_tuple, exponent = Decimal(repr(abs(number))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = k + exponent  # the value is 0.DIGITS * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


# Integers up to this size are exact as doubles, and read back as ints.
_DOUBLE_EXACT_LIMIT = 2 ** 53
_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?\Z")


def _typed(text: str) -> Union[str, bool, int, float]:
    """TEXT as the value `stringify` would have printed as TEXT, else TEXT itself."""
    if text == "true":
        return True
    if text == "false":
        return False
    if _INT_RE.match(text):
        if len(text) > 400:  # no double prints this long; int() would refuse 4300+ digits
            return text
        number = int(text)
        if str(number) != text:
            return text
        if abs(number) > _DOUBLE_EXACT_LIMIT and js_number(float(number)) == text:
            return float(number)  # a double JS printed in full, such as 1e20
        return number
    elif _FLOAT_RE.match(text):
        number = float(text)
        if math.isfinite(number) and js_number(number) == text:
            return number
    return text


# ---------------------------------------------------------------- writing

def _writable(text: str) -> str:
    """TEXT, which a SHELL file can hold: no NUL, no lone surrogate."""
    if "\0" in text:
        raise FormatError("SHELL: a value holds a NUL character, which no shell variable can hold")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("SHELL: a value holds a lone surrogate, not writable as UTF-8") from None
    return text


def quote(text: str) -> str:
    """TEXT in single quotes, a single quote written as '\\''."""
    return "'" + _writable(text).replace("'", "'\\''") + "'"


def _scalar(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number(value)
    if isinstance(value, str):
        return _writable(value)
    raise FormatError(f"SHELL: {where} is a {type(value).__name__}, "
                      "SHELL holds strings, numbers, booleans, arrays of them and objects")


def flatten(value: object) -> Dict[str, ShellValue]:
    """The shell variables VALUE becomes: name -> string, or list of strings for an array."""
    if not isinstance(value, dict):
        raise FormatError(f"SHELL writes an object, not a {type(value).__name__}")
    if deeper_than(value, MAX_DEPTH):
        raise FormatError(f"SHELL: the value is nested deeper than {MAX_DEPTH} levels")
    out: Dict[str, ShellValue] = {}
    _flatten_into(out, value, "")
    return out


def _flatten_into(out: Dict[str, ShellValue], obj: dict, prefix: str) -> None:
    for key, member in obj.items():
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise FormatError(f"SHELL: key {key!r} in {prefix.rstrip('_') or 'the value'} "
                              "is not a valid shell name ([A-Za-z_][A-Za-z0-9_]*)")
        name = prefix + key
        if member is None:
            continue
        if isinstance(member, dict):
            _flatten_into(out, member, name + "_")
            continue
        if is_reserved(name):
            raise FormatError(f"SHELL: {name} is a variable the shell itself uses or that "
                              "changes how programs run; refusing to set it")
        if name in out:
            raise FormatError(f"SHELL: two keys flatten to the same name {name}")
        if isinstance(member, (list, tuple)):
            items = []
            for i, item in enumerate(member):
                if item is None or isinstance(item, (dict, list, tuple)):
                    raise FormatError(f"SHELL: {name}[{i}] is a {type(item).__name__}; "
                                      "SHELL arrays hold strings, numbers and booleans")
                items.append(_scalar(item, f"{name}[{i}]"))
            out[name] = items
        else:
            out[name] = _scalar(member, name)


def assignment(name: str, value: ShellValue) -> str:
    if isinstance(value, list):
        return f"{name}=({' '.join(quote(item) for item in value)})"
    return f"{name}={quote(value)}"


def stringify(value: object) -> str:
    """VALUE (an object) as sorted shell assignments, one per line, newline-terminated."""
    lines = sorted(assignment(name, val) for name, val in flatten(value).items())
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------- reading

_NAME_AT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BLANK = " \t"
# Characters that end an unquoted word (`#` starts a comment only between words).
_WORD_END = " \t\n;)"
# Characters that would make a shell do something we do not: refused unquoted.
_UNQUOTED_REFUSED = "(|&<>`"
# `$` followed by one of these starts an expansion.
_EXPANSION_START = re.compile(r"\$[A-Za-z0-9_{(@*#?$!-]")


class _Reader:
    """A cursor over the text; every error names the line."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str, pos: Union[int, None] = None) -> FormatError:
        at = self.pos if pos is None else pos
        line = self.text.count("\n", 0, at) + 1
        return FormatError(f"SHELL: line {line}: {message}")

    def peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def skip_blanks(self) -> None:
        while self.peek() and self.peek() in _BLANK:
            self.pos += 1
        if self.text.startswith("\\\n", self.pos):  # line continuation
            self.pos += 2
            self.skip_blanks()

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end

    def word(self, legacy: bool) -> str:
        """One shell word; LEGACY reads `\\'` inside single quotes as a quote."""
        out: List[str] = []
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in _WORD_END:
                break
            if c == "'":
                opened = self.pos
                self.pos += 1
                while True:
                    if self.pos >= len(text):
                        raise self.error("unterminated single quote", opened)
                    c = text[self.pos]
                    if legacy and text.startswith("\\'", self.pos):
                        out.append("'")
                        self.pos += 2
                    elif c == "'":
                        self.pos += 1
                        break
                    else:
                        out.append(c)
                        self.pos += 1
            elif c == '"':
                opened = self.pos
                self.pos += 1
                while True:
                    if self.pos >= len(text):
                        raise self.error("unterminated double quote", opened)
                    c = text[self.pos]
                    if c == '"':
                        self.pos += 1
                        break
                    if c == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in '$`"\\\n':
                        if text[self.pos + 1] != "\n":
                            out.append(text[self.pos + 1])
                        self.pos += 2
                    elif c == "`" or _EXPANSION_START.match(text, self.pos):
                        raise self.error("expansions ($..., `...`) are not supported")
                    else:
                        out.append(c)
                        self.pos += 1
            elif c == "\\":
                if self.pos + 1 >= len(text):
                    raise self.error("backslash at the end of the text")
                if text[self.pos + 1] != "\n":
                    out.append(text[self.pos + 1])
                self.pos += 2
            elif c == "$" and _EXPANSION_START.match(text, self.pos):
                raise self.error("expansions ($..., `...`) are not supported")
            elif c in _UNQUOTED_REFUSED:
                raise self.error(f"unquoted {c!r} is not supported")
            else:
                out.append(c)
                self.pos += 1
        return "".join(out)

    def array(self, legacy: bool) -> List[str]:
        """The elements of `( ... )`, the cursor on the `(`."""
        opened = self.pos
        self.pos += 1
        items: List[str] = []
        while True:
            while self.peek() and self.peek() in " \t\n":
                self.pos += 1
            self.skip_comment()
            c = self.peek()
            if c == "":
                raise self.error("unterminated array", opened)
            if c == ")":
                self.pos += 1
                return items
            if c in " \t\n":
                continue
            if c == ";":
                raise self.error("';' inside an array")
            items.append(self.word(legacy))

    def skip_separators(self) -> None:
        """Blank space, empty lines, `;` and comments between statements."""
        while True:
            while self.peek() and self.peek() in " \t\n;":
                self.pos += 1
            if self.peek() != "#":
                return
            self.skip_comment()

    def statement_end(self) -> None:
        self.skip_blanks()
        self.skip_comment()
        c = self.peek()
        if c in ("", "\n", ";"):
            self.pos += len(c)
            return
        raise self.error(f"unexpected {c!r} after the value")

    def statement(self, legacy: bool) -> Tuple[str, ShellValue]:
        """`[export ]name=value`, then the end of the statement."""
        text = self.text
        if text.startswith("export", self.pos) and text[self.pos + 6:self.pos + 7] in (" ", "\t"):
            self.pos += 6
            self.skip_blanks()
        match = _NAME_AT.match(self.text, self.pos)
        if not match or not self.text.startswith("=", match.end()):
            raise self.error("expected name=value")
        name = match.group()
        self.pos = match.end() + 1
        if self.peek() == "(":
            value: ShellValue = self.array(legacy)
        else:
            value = self.word(legacy)
        self.statement_end()
        return name, value


def parse_assignments(text: str) -> Dict[str, ShellValue]:
    """The variables TEXT assigns, as a shell sees them; a later assignment wins.

    Each statement is read the shell's way first. The original chariotd wrote a
    quote as `\\'` inside single quotes, which a shell reads differently; a
    statement is read that way only when the shell's reading leaves the rest of
    the text unreadable, so text written by `stringify` is always read as a
    shell reads it.
    """
    if not isinstance(text, str):
        raise FormatError(f"SHELL reads text, not {type(text).__name__}")
    out: Dict[str, ShellValue] = {}
    for name, value in _statements(_Reader(text)):
        out[name] = value
    return out


def _statements(reader: _Reader) -> List[Tuple[str, ShellValue]]:
    """Every statement, backtracking to the legacy quote reading where needed.

    A depth-first search over (position, reading) choices; positions from which
    no reading works are remembered, so each choice is tried at most once. A reading
    may still scan to the end of the text before it fails (a quote that pairs with
    the next statement's), so the characters scanned are counted: text that needs
    more than WORK_PER_CHAR times its length is refused rather than read in
    quadratic time (no text `stringify` writes comes near).
    """
    text = reader.text
    work_left = WORK_PER_CHAR * len(text) + 65536
    dead_ends = set()
    # Each entry: (statement start, legacy reading?, name, value).
    chosen: List[Tuple[int, bool, str, ShellValue]] = []
    first_error: Union[FormatError, None] = None
    pos, legacy = 0, False
    while True:
        reader.pos = pos
        reader.skip_separators()
        pos = reader.pos
        if pos >= len(text):
            return [(name, value) for _, _, name, value in chosen]
        if pos not in dead_ends:
            try:
                name, value = reader.statement(legacy)
            except FormatError as e:
                first_error = first_error or e
                name = None
            work_left -= max(reader.pos - pos, 1)
            if work_left < 0:
                raise FormatError("SHELL: the quotes are too ambiguous to read (legacy \\' "
                                  "quotes pairing across statements)")
            if name is not None:
                chosen.append((pos, legacy, name, value))
                pos, legacy = reader.pos, False
                continue
            if not legacy:
                legacy = True
                continue
            dead_ends.add(pos)
        # Backtrack to the latest statement read the shell's way and try the other reading.
        while chosen and chosen[-1][1]:
            dead_ends.add(chosen.pop()[0])
        if not chosen:
            assert first_error is not None
            raise first_error
        pos, legacy = chosen.pop()[0], True


# A `_` after a letter or digit and before more text separates two levels; other
# underscores (leading, doubled, trailing) belong to a level: `a__b` is a -> _b.
_LEVEL_SEPARATOR = re.compile(r"(?<=[^_])_(?=.)", re.S)


WORK_PER_CHAR = 8  # characters scanned per character of text, at most (see _statements)


def split_name(name: str) -> List[str]:
    """The object levels a flattened NAME stands for. A part that is no key of its
    own (`0` in `_0_0`: a level starts with a letter or `_`) stays with the one before."""
    levels: List[str] = []
    for part in _LEVEL_SEPARATOR.split(name):
        if levels and not KEY_RE.match(part):
            levels[-1] += "_" + part
        else:
            levels.append(part)
    return levels


def held(value: object) -> Dict[str, ShellValue]:
    """What a SHELL outfile holds for VALUE, in the form `read_held` reads it back:
    the flat variables (a SHELL file holds no nesting, so two values that flatten
    alike are the same file). FormatError when no SHELL outfile can hold VALUE."""
    return flatten(value)


def read_held(text: str) -> Dict[str, ShellValue]:
    """The flat variables TEXT holds: compared with `held` of a value."""
    return parse_assignments(text)


def unflatten(variables: Dict[str, ShellValue]) -> dict:
    """A value that flattens to VARIABLES: names split at `_` into nested objects as
    the original chariotd read them, strings typed back (`_typed`). Never fails:
    where the split would clash with a name already placed (`server` and
    `server_port`, sorted so the shorter comes first), the rest of the name stays
    one key (`{"server": .., "server_port": ..}`), and a name is split into at most
    MAX_DEPTH - 1 levels, so the value nests at most MAX_DEPTH levels (arrays
    included). `flatten(unflatten(v)) == v` for every v read from text."""
    out: dict = {}
    for name in sorted(variables):
        value = variables[name]
        levels = split_name(name)
        if len(levels) >= MAX_DEPTH:
            levels[MAX_DEPTH - 2:] = ["_".join(levels[MAX_DEPTH - 2:])]
        node, i = out, 0
        while i < len(levels) - 1:
            child = node.get(levels[i])
            if child is None:
                child = node[levels[i]] = {}
            elif not isinstance(child, dict):  # a value already: the rest stays flat here
                break
            node, i = child, i + 1
        node["_".join(levels[i:])] = (
            [_typed(item) for item in value] if isinstance(value, list) else _typed(value))
    return out


def parse(text: str) -> dict:
    """TEXT read back into a value (see `unflatten`): nested objects, booleans and
    numbers restored as the original chariotd did, where the names allow it."""
    return unflatten(parse_assignments(text))
