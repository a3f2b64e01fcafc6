"""defender/custom.py: custom metrics from a directory, each type, and hostile files."""

import json
import os
import subprocess

import pytest
from hypothesis import given, strategies as st

from chariotd.defender import custom
from chariotd.defender.custom import BadMetric, CustomMetric

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.parametrize("content,kind,value", [
    ("47", "number", 47),
    ("-3.5", "number", -3.5),
    ("[1200, 1180.5]", "number_list", (1200, 1180.5)),
    ('["root", "pi"]', "string_list", ("root", "pi")),
    ('["172.0.0.1", "fd00::2"]', "ip_list", ("172.0.0.1", "fd00::2")),
    ('["172.0.0.1", "pi"]', "string_list", ("172.0.0.1", "pi")),
    ('{"number": 5}', "number", 5),
    ('{"number_list": []}', "number_list", ()),
    ('{"string_list": ["10.0.0.1"]}', "string_list", ("10.0.0.1",)),
    ('{"ip_list": []}', "ip_list", ()),
    ('{"ip_list": ["::1"]}', "ip_list", ("::1",)),
])
def test_each_type(content, kind, value):
    metric = custom.parse_metric("m", content.encode())
    assert (metric.kind, metric.value) == (kind, value)
    assert metric.typed() == {kind: list(value) if isinstance(value, tuple) else value}


@pytest.mark.parametrize("content,reason", [
    ("true", "true/false"),
    ('"12"', "a string"),
    ("null", "null"),
    ("[]", "empty list"),
    ('[1, "a"]', "only numbers or only strings"),
    ("[[1]]", "only numbers or only strings"),
    ('{"number": 1, "number_list": []}', "exactly one"),
    ('{"count": 1}', "exactly one"),
    ('{"number": [1]}', "not a number"),
    ('{"ip_list": ["10.0.0.1", "host"]}', "not an IP address"),
    ('{"ip_list": ["fe80::1%eth0"]}', "not an IP address"),
    ('{"string_list": ["a\\u0000b"]}', "control characters"),
    (json.dumps({"string_list": ["x" * 300]}), "over 256 characters"),
    (json.dumps(list(range(1001))), "at most 1000"),
    (str(2 ** 60), "2**53"),
    ("NaN", "not JSON"),
    ("1e999", "not a finite number"),
    ("{", "not JSON"),
])
def test_bad_values_say_why(content, reason):
    with pytest.raises(BadMetric, match=reason.replace("*", r"\*").replace("[", r"\[")):
        custom.parse_metric("m", content.encode())


def test_bad_bytes_are_not_json():
    with pytest.raises(BadMetric, match="not UTF-8"):
        custom.parse_metric("m", b"\xff\xfe")


@pytest.mark.parametrize("name", ["", "a b", "x/y", "aws:cpu", "AWS:cpu", "é", "n" * 129,
                                  "a\nb"])
def test_bad_names(name):
    with pytest.raises(BadMetric):
        custom.check_name(name)


def test_good_names():
    for name in ("cpu_temp", "a:b-c_D9", "n" * 128, "awsx"):
        custom.check_name(name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12),
                                                                 inner, max_size=3),
    max_leaves=20)


@given(json_values)
def test_any_json_is_a_metric_or_a_reason(value):
    try:
        kind, sent = custom.metric_value(value)
    except BadMetric as error:
        assert str(error)
        return
    assert kind in custom.KINDS
    if kind == "number":
        assert isinstance(sent, (int, float)) and not isinstance(sent, bool)
    else:
        assert isinstance(sent, tuple) and len(sent) <= custom.MAX_LIST


@given(st.binary(max_size=200))
def test_any_bytes_never_raise_anything_else(data):
    try:
        custom.parse_metric("m", data)
    except BadMetric:
        pass


def test_directory_of_every_type_and_bad_files(tmp_path):
    (tmp_path / "cpu_temp").write_text("47")
    (tmp_path / "fan_rpm").write_text("[1200, 1180]")
    (tmp_path / "users").write_text('["root", "pi"]')
    (tmp_path / "peers").write_text('["172.0.0.1", "172.0.0.10"]')
    (tmp_path / "broken").write_text("{not json")
    (tmp_path / "aws:cpu").write_text("1")
    (tmp_path / "big").write_bytes(b"1" + b" " * custom.MAX_FILE_BYTES)
    (tmp_path / ".cpu_temp.tmp-123").write_text("garbage")   # a writer's temp file
    (tmp_path / "adir").mkdir()
    os.symlink("/etc/shadow", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "hard").write_text("1")
    os.link(tmp_path / "hard", tmp_path / "hard2")
    metrics, notes = custom.read_custom_metrics(str(tmp_path))
    assert metrics == [
        CustomMetric("cpu_temp", "number", 47),
        CustomMetric("fan_rpm", "number_list", (1200, 1180)),
        CustomMetric("peers", "ip_list", ("172.0.0.1", "172.0.0.10")),
        CustomMetric("users", "string_list", ("root", "pi")),
    ]
    text = "\n".join(notes)
    for name, why in [("broken", "not JSON"), ("aws:cpu", "AWS's own"),
                      ("big", "bytes; at most"), ("adir", "a directory"),
                      ("link", "symbolic link"), ("fifo", "a FIFO"),
                      ("hard", "2 links"), ("hard2", "2 links")]:
        assert f"custom metric {name!r} left out" in text and why in text, name
    assert len(notes) == 8


def test_metrics_and_entries_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(custom, "MAX_METRICS", 3)
    for i in range(6):
        (tmp_path / f"m{i}").write_text(str(i))
    metrics, notes = custom.read_custom_metrics(str(tmp_path))
    assert [m.name for m in metrics] == ["m0", "m1", "m2"]
    assert notes == [f"custom metrics {tmp_path}: over 3 metrics; m3 and the names "
                     "after it were left out"]
    monkeypatch.setattr(custom, "MAX_ENTRIES", 2)
    metrics, notes = custom.read_custom_metrics(str(tmp_path))
    assert len(metrics) == 2 and "over 2 entries" in notes[0]


def test_missing_directory_is_a_note(tmp_path):
    metrics, notes = custom.read_custom_metrics(str(tmp_path / "none"))
    assert metrics == [] and "cannot list" in notes[0]


def test_files_written_by_an_unprivileged_user(tmp_path):
    tmp_path.chmod(0o1777)
    script = ("echo 12 > ok; ln -s /etc/shadow sneaky; mkfifo pipe; "
              "printf '[\"10.0.0.1\"]' > ips")
    subprocess.run(NOBODY + ["sh", "-c", script], cwd=tmp_path, check=True, timeout=10)
    metrics, notes = custom.read_custom_metrics(str(tmp_path))
    assert metrics == [CustomMetric("ips", "ip_list", ("10.0.0.1",)),
                       CustomMetric("ok", "number", 12)]
    assert len(notes) == 2 and all("left out" in n for n in notes)
