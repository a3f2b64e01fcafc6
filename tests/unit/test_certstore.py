import os
import time

import pytest

from chariotd.certstore import Certstore, CertstoreError, parse_endpoint


@pytest.mark.parametrize("text,expected", [
    ("example.com", ("example.com", 8883)),
    ("example.com\n", ("example.com", 8883)),
    ("  abc-ats.iot.eu-west-1.amazonaws.com:443 \n", ("abc-ats.iot.eu-west-1.amazonaws.com", 443)),
    ("127.0.0.1:18883", ("127.0.0.1", 18883)),
    ("[::1]:8884", ("::1", 8884)),
    ("[::1]", ("::1", 8883)),
])
def test_endpoint(text, expected):
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "host:", "host:0", "host:99999", "host:x",
                                  "two words", "[::1", "[::1]x", ":8883", "host:\u0663",
                                  "[nothost]:8883", "::1", "-host", "a..b", "x" * 64 + ".com"])
def test_bad_endpoint(text):
    with pytest.raises(CertstoreError):
        parse_endpoint(text)


@pytest.mark.parametrize("text,problem", [
    ("https://abc-ats.iot.eu-west-1.amazonaws.com\n", "is a URL"),
    ("mqtts://abc-ats.iot.eu-west-1.amazonaws.com:8883", "is a URL"),
    ("abc-ats.iot.eu-west-1.amazonaws.com/mqtt", "holds a path"),
    ("user@abc-ats.iot.eu-west-1.amazonaws.com", "holds a user name"),
    ("abc-ats.iot.eu-west-1.amazonaws.com :443", "holds a space"),
    ("abc-ats.iot.eu-west-1.amazonaws.com\nother.example.com\n", "holds 2 lines"),
    ("\n \n", "is empty"),
    ("host:70000", "the port is not a number from 1 to 65535"),
    ("host_name.with space", "holds a space"),
    ("caf\u00e9.example.com", "is not host or host:port"),
])
def test_a_bad_endpoint_names_its_problem(text, problem):
    with pytest.raises(CertstoreError, match=problem):
        parse_endpoint(text)


def test_a_long_bad_endpoint_is_shown_shortened():
    with pytest.raises(CertstoreError) as error:
        parse_endpoint("https://" + "a" * 4000)
    assert len(str(error.value)) < 200 and "..." in str(error.value)


def add_cert(store, cert_id, mtime):
    directory = store / cert_id
    directory.mkdir()
    (directory / f"{cert_id}-certificate.pem.crt").write_text("cert")
    (directory / f"{cert_id}-private.pem.key").write_text("key")
    os.utime(directory / f"{cert_id}-certificate.pem.crt", (mtime, mtime))


def test_preferred_is_created_for_the_newest_and_rotates(tmp_path):
    now = time.time()
    add_cert(tmp_path, "aaa", now - 100)
    add_cert(tmp_path, "bbb", now)
    add_cert(tmp_path, "ccc", now - 50)
    (tmp_path / "incomplete").mkdir()
    store = Certstore(tmp_path)
    assert [c.id for c in store.certificates()] == ["aaa", "bbb", "ccc"]
    assert store.preferred().id == "bbb"
    assert os.readlink(tmp_path / "preferred") == "bbb"
    assert store.rotate().id == "ccc"
    assert store.rotate().id == "aaa"
    assert store.preferred().id == "aaa"


def test_dangling_preferred_is_replaced(tmp_path):
    add_cert(tmp_path, "aaa", time.time())
    os.symlink("gone", tmp_path / "preferred")
    assert Certstore(tmp_path).preferred().id == "aaa"
    assert os.readlink(tmp_path / "preferred") == "aaa"


def test_single_or_no_certificate_does_not_rotate(tmp_path):
    store = Certstore(tmp_path)
    assert store.preferred() is None and store.rotate() is None
    add_cert(tmp_path, "aaa", time.time())
    assert store.rotate() is None
