from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariotd.formats import FormatError, shell
from chariotd.shadow.values import MAX_DEPTH, deeper_than


def _nested(depth: int):
    """An object nesting DEPTH levels: {"a": {"a": ... 1}}."""
    value = 1
    for _ in range(depth):
        value = {"a": value}
    return value


# The README's comprehensive example, the input as a Python value ...
README_VALUE = {
    "a": 1,
    "b": "str",
    "c": "with spaces",
    "d": "with single ' quote",
    "e": 'with double " quote',
    "f": True,
    "g": False,
    "h": -64.2,
    "i": [1, 2, 3],
    "j": ["x ", "y ", " z"],
    "k": [],
    "l": "",
    "nested": {
        "x": {
            "y": {
                "z1": [True],
                "z2": "something else",
            },
            "yy": 42,
        }
    },
}

# ... and the output exactly as the README prints it.
README_OUTPUT = """\
a='1'
b='str'
c='with spaces'
d='with single \\' quote'
e='with double " quote'
f='true'
g='false'
h='-64.2'
i=('1' '2' '3')
j=('x ' 'y ' ' z')
k=()
l=''
nested_x_y_z1=('true')
nested_x_y_z2='something else'
nested_x_yy='42'
"""

# EXTENSIONS F: a single quote is written close-escape-reopen instead.
OUR_OUTPUT = README_OUTPUT.replace("d='with single \\' quote'", "d='with single '\\'' quote'")


def test_readme_example_is_written_exactly_with_the_quote_exception():
    assert "'\\''" in OUR_OUTPUT
    assert shell.stringify(README_VALUE) == OUR_OUTPUT


def test_readme_output_parses_back_to_the_example_in_both_quote_forms():
    assert shell.parse(OUR_OUTPUT) == README_VALUE
    assert shell.parse(README_OUTPUT) == README_VALUE


def test_readme_parse_keeps_types():
    value = shell.parse(OUR_OUTPUT)
    assert type(value["a"]) is int and type(value["h"]) is float
    assert value["f"] is True and value["nested"]["x"]["y"]["z1"] == [True]


def test_parse_assignments_is_what_a_shell_sees():
    assert shell.parse_assignments(OUR_OUTPUT) == shell.flatten(README_VALUE)
    assert shell.parse_assignments(OUR_OUTPUT)["nested_x_yy"] == "42"
    assert shell.parse_assignments(OUR_OUTPUT)["i"] == ["1", "2", "3"]


@pytest.mark.parametrize("number, text", [
    (1, "1"), (1.0, "1"), (-1.0, "-1"), (0.0, "0"), (-0.0, "0"), (-64.2, "-64.2"),
    (0.1, "0.1"), (0.1 + 0.2, "0.30000000000000004"), (1e20, "100000000000000000000"),
    (1e21, "1e+21"), (1.5e300, "1.5e+300"), (1e-6, "0.000001"), (1e-7, "1e-7"),
    (1.23e-18, "1.23e-18"), (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
    (2.0 ** 53, "9007199254740992"), (1.2345678901234568e20, "123456789012345680000"),
    (123.456, "123.456"), (10 ** 30, "1" + "0" * 30),
])
def test_numbers_print_as_javascript_does(number, text):
    assert shell.js_number(number) == text
    assert shell.stringify({"n": number}) == f"n='{text}'\n"


@pytest.mark.parametrize("value, message", [
    ("text", "writes an object"),
    (["a"], "writes an object"),
    ({"a-b": 1}, "not a valid shell name"),
    ({"1a": 1}, "not a valid shell name"),
    ({"": 1}, "not a valid shell name"),
    ({"a b": 1}, "not a valid shell name"),
    ({"a;touch x": 1}, "not a valid shell name"),
    ({"ok": {"x.y": 1}}, "key 'x.y' in ok is not a valid shell name"),
    ({"ok": {"1": 1}}, "not a valid shell name"),
    ({"é": 1}, "not a valid shell name"),
    ({"a": "nul\0byte"}, "NUL"),
    ({"a": ["x", "\0"]}, "NUL"),
    ({"a": "\udc80"}, "surrogate"),
    ({"a": math.nan}, "not a number"),
    ({"a": [math.inf]}, "not a number"),
    ({"a": [None]}, "arrays hold"),
    ({"a": [[1]]}, "arrays hold"),
    ({"a": [{"b": 1}]}, "arrays hold"),
    ({"a": {1, 2}}, "set"),
    ({"a_b": 1, "a": {"b": 2}}, "same name a_b"),
    ({"PATH": "/tmp"}, "PATH is a variable the shell itself uses"),
    ({"IFS": "x"}, "shell itself uses"),
    ({"PS4": "$(touch x)"}, "shell itself uses"),
    ({"BASH": {"ENV": "/tmp/x"}}, "BASH_ENV is a variable the shell itself uses"),
    ({"LD": {"PRELOAD": "x.so"}}, "shell itself uses"),
    ({"_": 1}, "shell itself uses"),
    ({"UID": 0}, "shell itself uses"),
    ({"GCONV_PATH": "/tmp"}, "changes how programs run"),
    ({"PYTHONPATH": "/tmp"}, "changes how programs run"),
    ({"NODE": {"OPTIONS": "--require /tmp/x.js"}}, "NODE_OPTIONS"),
    ({"PERL5OPT": "-Mx"}, "changes how programs run"),
    ({"TMPDIR": "/tmp/x"}, "changes how programs run"),
    ({"LD_LIBRARY_PATH": "/tmp"}, "changes how programs run"),
    ({"SHELLOPTS": "xtrace"}, "changes how programs run"),
    ({"a": _nested(MAX_DEPTH)}, "nested deeper than 32 levels"),
])
def test_refused_values(value, message):
    with pytest.raises(FormatError, match=message):
        shell.stringify(value)


def test_nulls_are_left_out_and_empty_objects_write_nothing():
    assert shell.stringify({"a": None, "b": {}, "c": {"d": None, "e": 1}}) == "c_e='1'\n"
    assert shell.stringify({}) == ""


def test_lines_are_sorted_as_the_original_sorted_them():
    assert shell.stringify({"a": 1, "a1": 2, "B": 3}) == "B='3'\na1='2'\na='1'\n"


def test_values_with_newlines_span_lines_and_parse_back():
    text = shell.stringify({"a": "one\ntwo\n", "b": "x"})
    assert text == "a='one\ntwo\n'\nb='x'\n"
    assert shell.parse(text) == {"a": "one\ntwo\n", "b": "x"}


def test_parse_is_lenient_with_quotes_comments_and_blank_lines():
    text = """
# a comment
a=plain
b="double $ \\"quoted\\" \\$x \\\\ \\` it's"
c='single'"double"unquoted\\ space
export d='exported'   # trailing comment
e= ; f=x;g='y'
h=( 'a b' "c" d\\ e   # comment inside
    f )
i=x#y
j=''
k=
m='it'\\''s'
n='line
continued'
"""
    assert shell.parse_assignments(text) == {
        "a": "plain",
        "b": 'double $ "quoted" $x \\ ` it\'s',
        "c": "singledoubleunquoted space",
        "d": "exported",
        "e": "", "f": "x", "g": "y",
        "h": ["a b", "c", "d e", "f"],
        "i": "x#y",
        "j": "", "k": "",
        "m": "it's",
        "n": "line\ncontinued",
    }


def test_legacy_quotes_on_several_lines():
    text = "a='it\\'s'\nb='he\\'s here'\nc='x'\nd='it'\\''s'\n"
    assert shell.parse_assignments(text) == {
        "a": "it's", "b": "he's here", "c": "x", "d": "it's"}


def test_posix_reading_wins_when_it_makes_sense():
    # 'a\' is the string a\ (what we write for it); it never means a quote.
    assert shell.parse_assignments(shell.stringify({"a": "x\\", "b": "\\'"})) == {
        "a": "x\\", "b": "\\'"}


def test_later_assignment_wins():
    assert shell.parse("a='1'\na='2'\n") == {"a": 2}


def test_parse_types_only_what_stringify_would_print():
    value = shell.parse(
        "a='007'\nb='1.0'\nc=' 1'\nd='1e3'\ne='-0'\nf='True'\ng='0x10'\n"
        "h='1.5'\ni='-3'\nj='1e+21'\nk='NaN'\nl='Infinity'\nm='12345678901234567890'\n")
    assert value == {
        "a": "007", "b": "1.0", "c": " 1", "d": "1e3", "e": "-0", "f": "True",
        "g": "0x10", "h": 1.5, "i": -3, "j": 1e21, "k": "NaN", "l": "Infinity",
        "m": 12345678901234567890,
    }
    assert shell.parse("a='100000000000000000000'\nb='9007199254740993'\n") == {
        "a": 1e20, "b": 9007199254740993}
    assert type(shell.parse("a='9007199254740992'\n")["a"]) is int


def test_parse_splits_names_into_levels():
    assert shell.parse("a_b_c='1'\na_d='x'\n_p='1'\nq__r='2'\ns_='3'\n") == {
        "a": {"b": {"c": 1}, "d": "x"}, "_p": 1, "q": {"_r": 2}, "s_": 3}
    assert shell.split_name("a__b") == ["a", "_b"]
    assert shell.split_name("_") == ["_"]
    assert shell.split_name("a___b_") == ["a", "__b_"]


def test_names_that_are_prefixes_of_others_are_ordinary_names():
    """`server` and `server_port` (finding 3 of issue 12): written, and read back
    whatever the order, the shorter one keeping the longer one flat beside it."""
    value = {"server": "a", "server_port": 80, "log": {"level": "x"}, "log_level_x": 1}
    text = shell.stringify(value)
    assert text == "log_level='x'\nlog_level_x='1'\nserver='a'\nserver_port='80'\n"
    assert shell.read_held(text) == shell.held(value)
    for text in ("a='1'\na_b='2'\n", "a_b='2'\na='1'\n"):
        assert shell.parse(text) == {"a": 1, "a_b": 2}
    assert shell.parse("a_b='1'\na_b_c_d='2'\na_b_c='3'\n") == {
        "a": {"b": 1, "b_c": 3, "b_c_d": 2}}


def test_parse_nests_at_most_max_depth_levels():
    name = "_".join(["a"] * 40)
    value = shell.parse(f"{name}=('1')\n")
    assert not deeper_than(value, MAX_DEPTH)
    assert shell.flatten(value) == {name: ["1"]}


@pytest.mark.parametrize("text, message", [
    ("a='x\n", "line 1: unterminated single quote"),
    ('a="x\n', "unterminated double quote"),
    ("a=(x\n", "unterminated array"),
    ("x\n", "expected name=value"),
    ("ok='1'\n1a='x'\n", "line 2: expected name=value"),
    ("a b='1'\n", "expected name=value"),
    ("a=$(touch x)\n", "expansions"),
    ("a=$HOME\n", "expansions"),
    ("a=${HOME}\n", "expansions"),
    ('a="$(touch x)"\n', "expansions"),
    ('a="`touch x`"\n', "expansions"),
    ("a=`touch x`\n", "unquoted '`'"),
    ("a=x|y\n", "unquoted '\\|'"),
    ("a=x y\n", "unexpected 'y' after the value"),
    ("a='x' 'y'\n", "unexpected"),
    ("a=x)\n", "unexpected '\\)'"),
    ("a=(x;y)\n", "';' inside an array"),
    ("a=x\\", "backslash at the end"),
])
def test_parse_errors_name_the_problem(text, message):
    with pytest.raises(FormatError, match=message):
        shell.parse(text)


def test_parse_refuses_non_text():
    with pytest.raises(FormatError):
        shell.parse(b"a='1'")


# ------------------------------------------------------------ property tests

PWN_MARKER = "chariotd-pwned"

# Values written to make a shell run something if quoting were wrong.
EVIL = [
    "$(touch {m})", "`touch {m}`", "'; touch {m}; '", "'\"; touch {m}; \"'",
    "\\'; touch {m} #", "x'\ntouch {m}\n'", "\ntouch {m}\n", "${{x:=$(touch {m})}}",
    "'$(touch {m})'", "\\", "'", "''", "\\'", "'\\''", "\"", "$", "!!", "a;b", "*", "~",
    ") ; touch {m} ; (", "\r\n", "\t", "{m}", "\x01\x1b[31m", "é ü 中 🙂",
]

names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,6}\Z")
scalars = (
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)
    | st.sampled_from(EVIL)
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
)


def objects(with_arrays: bool):
    leaves = scalars | st.lists(scalars, max_size=4) if with_arrays else scalars
    return st.recursive(
        st.dictionaries(names, leaves, max_size=5),
        lambda children: st.dictionaries(names, leaves | children, max_size=4),
        max_leaves=12,
    )


def fill_marker(value, marker: str):
    if isinstance(value, dict):
        return {k: fill_marker(v, marker) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_marker(v, marker) for v in value]
    if isinstance(value, str) and "{m}" in value:
        return value.replace("{m}", marker)
    return value


def writable(value):
    """VALUE's variables, or None when stringify refuses it (clashing or reserved names)."""
    try:
        return shell.flatten(value)
    except FormatError:
        return None


def source_and_print(shell_path: str, tmp: Path, values: list, locale: str = "C.UTF-8"):
    """Source stringify(value) for each value in its own subshell; return what each printed.

    Each variable is printed as its text followed by NUL; an array as its length then
    its elements. A subshell whose sourcing failed prints only the token FAILED.
    """
    script = []
    expected = []
    for i, variables in enumerate(values):
        path = tmp / f"values{i}.sh"
        path.write_bytes(shell.stringify(values[i][0]).encode("utf-8"))
        prints = []
        for name, val in variables[1].items():
            if isinstance(val, list):
                # no loop variable: it could be one of the sourced names
                prints.append(f'printf "%s\\0" "${{#{name}[@]}}"; '
                              f'[ "${{#{name}[@]}}" -eq 0 ] || printf "%s\\0" "${{{name}[@]}}"')
            else:
                prints.append(f'printf "%s\\0" "${name}"')
        script.append(f"( . '{path}' || exit 1; {'; '.join(prints) or ':'} ) "
                      f"|| printf 'FAILED\\0'; printf 'END{i}\\0'")
        expected.append(variables[1])
    result = subprocess.run(
        [shell_path, "-c", "\n".join(script)], cwd=tmp, capture_output=True, timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": locale})
    fields = result.stdout.decode("utf-8").split("\0")
    out = []
    current: list = []
    for field in fields[:-1]:
        if field.startswith("END"):
            out.append(current)
            current = []
        else:
            current.append(field)
    assert len(out) == len(values), (result.stdout, result.stderr)
    return out, expected, result.stderr.decode("utf-8", "replace")


def expected_fields(variables: dict) -> list:
    fields = []
    for val in variables.values():
        if isinstance(val, list):
            fields.append(str(len(val)))
            fields.extend(val)
        else:
            fields.append(val)
    return fields


BASH = shutil.which("bash")
DASH = shutil.which("dash")


def marker_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pwn") / PWN_MARKER


batch_settings = settings(max_examples=15, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large])


@pytest.mark.skipif(BASH is None, reason="bash not installed")
@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
@batch_settings
@given(batch=st.lists(objects(with_arrays=True), min_size=1, max_size=25))
def test_bash_sources_every_value_back_exactly_and_runs_nothing(tmp_path_factory, locale, batch):
    tmp = tmp_path_factory.mktemp("bash")
    marker = tmp / PWN_MARKER
    values = [fill_marker(v, str(marker)) for v in batch]
    pairs = [(v, writable(v)) for v in values]
    pairs = [p for p in pairs if p[1] is not None]
    printed, expected, stderr = source_and_print(BASH, tmp, pairs, locale)
    for got, variables in zip(printed, expected):
        assert got == expected_fields(variables), stderr
    assert not marker.exists()


@pytest.mark.skipif(DASH is None, reason="dash not installed")
@batch_settings
@given(batch=st.lists(objects(with_arrays=False), min_size=1, max_size=25))
def test_dash_sources_every_value_back_exactly_and_runs_nothing(tmp_path_factory, batch):
    tmp = tmp_path_factory.mktemp("dash")
    marker = tmp / PWN_MARKER
    values = [fill_marker(v, str(marker)) for v in batch]
    pairs = [(v, writable(v)) for v in values]
    pairs = [p for p in pairs if p[1] is not None]
    printed, expected, stderr = source_and_print(DASH, tmp, pairs)
    for got, variables in zip(printed, expected):
        assert got == expected_fields(variables), stderr
    assert not marker.exists()


@pytest.mark.skipif(DASH is None, reason="dash not installed")
def test_dash_stops_at_arrays_without_running_anything(tmp_path):
    marker = tmp_path / PWN_MARKER
    value = {"a": "before", "i": [f"$(touch {marker})", f"`touch {marker}`", "'; touch x; '"],
             "z": f"$(touch {marker})"}
    (tmp_path / "v.sh").write_text(shell.stringify(value))
    result = subprocess.run([DASH, "-c", ". ./v.sh; touch reached"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=10)
    assert result.returncode != 0 and "Syntax error" in result.stderr
    assert not marker.exists() and not (tmp_path / "reached").exists()
    assert not (tmp_path / "x").exists()


@settings(max_examples=300, deadline=None)
@given(objects(with_arrays=True))
def test_parse_assignments_reads_back_what_stringify_wrote(value):
    variables = writable(value)
    if variables is not None:
        assert shell.parse_assignments(shell.stringify(value)) == variables


def normalised(value):
    """What parse can give back: JS-printed numbers, no empty objects."""
    if isinstance(value, dict):
        out = {k: normalised(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v != {}}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2 ** 53:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 53:
        # parse reads a big integer JS could have printed for a double as that double
        if shell.js_number(float(value)) == str(value):
            return float(value)
    return value


# Keys without `_` and strings that do not spell a number or boolean: the value
# survives stringify and parse unchanged (up to JS number printing).
plain_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9]{0,5}\Z")
plain_scalars = (
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)
    .filter(lambda s: isinstance(shell._typed(s), str))
    | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)
plain_leaves = plain_scalars | st.lists(plain_scalars, max_size=3)
plain_objects = st.recursive(
    st.dictionaries(plain_names, plain_leaves, max_size=4),
    lambda children: st.dictionaries(plain_names, plain_leaves | children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(plain_objects)
def test_round_trip(value):
    if writable(value) is None:
        return
    assert shell.parse(shell.stringify(value)) == normalised(value)


@pytest.mark.parametrize("shell_path", [p for p in (BASH, DASH) if p])
def test_every_evil_value_reads_back_and_runs_nothing(tmp_path, shell_path):
    marker = tmp_path / PWN_MARKER
    value = {f"v{i}": evil.replace("{m}", str(marker)) for i, evil in enumerate(EVIL)}
    value["nested"] = {"x": value["v0"], "y": value["v2"]}
    printed, expected, stderr = source_and_print(shell_path, tmp_path, [(value, shell.flatten(value))])
    assert printed[0] == expected_fields(expected[0]), stderr
    assert not marker.exists()


def test_a_number_python_will_not_convert_stays_a_string():
    """5000 digits: int() raises a plain ValueError (not FormatError), which escaped
    parse and ended the applier on a SHELL update file."""
    assert shell.parse("a=" + "1" * 5000 + "\n") == {"a": "1" * 5000}
