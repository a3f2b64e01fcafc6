"""The one way to touch a path another user may control (chariotd/kernel/safe_open.py) and its
users: no symlink followed, no open that blocks, the type checked on the opened file,
one link for files taken from new/ and outfiles, no 07000 bit ever kept."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from chariotd.kernel import pending, safe_open
from chariotd.kernel.fsutil import write_file_atomic
from chariotd.services import outfile
from chariotd.services.subscriptions import WriteSubscription

NOBODY = 65534


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"root only\n")
    path.chmod(0o600)
    return path


def planted(tmp_path, kind: str, secret):
    """A path holding KIND: what an attacker can leave where a file is expected."""
    path = tmp_path / f"planted-{kind}"
    if kind == "symlink":
        os.symlink(secret, path)
    elif kind == "hardlink":
        os.link(secret, path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "device":
        return "/dev/zero"
    return path


KINDS = ("symlink", "hardlink", "fifo", "directory", "device")
REASONS = {"symlink": "is a symbolic link", "hardlink": "has 2 links", "fifo": "is a FIFO",
           "directory": "is a directory", "device": "is a character device"}


@pytest.mark.parametrize("kind", KINDS)
def test_read_file_refuses_at_once_what_is_not_a_single_regular_file(tmp_path, secret, kind):
    path = planted(tmp_path, kind, secret)
    started = time.monotonic()
    with pytest.raises(safe_open.Refused, match=REASONS[kind]):
        safe_open.read_file(path, 1000, single_link=True)
    assert time.monotonic() - started < 1.0  # never waits on a FIFO or a device


def test_read_file_reads_a_regular_file_up_to_its_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    data, st = safe_open.read_file(path, 10, single_link=True)
    assert data == b"x" * 10 and st.st_size == 10
    with pytest.raises(safe_open.Refused, match="is 10 bytes; at most 9 are read"):
        safe_open.read_file(path, 9)
    os.link(path, tmp_path / "g")
    assert safe_open.read_file(path, 10)[0] == b"x" * 10  # links only count when asked
    with pytest.raises(FileNotFoundError):
        safe_open.read_file(tmp_path / "missing", 10)


@pytest.mark.parametrize("swapped_in", ["symlink", "fifo"])
def test_the_opened_file_decides_not_the_name(tmp_path, secret, monkeypatch, swapped_in):
    """Swapped between the lstat and the open: O_NOFOLLOW and the fstat still refuse."""
    path = planted(tmp_path, swapped_in, secret)
    regular = os.stat(secret)
    monkeypatch.setattr(safe_open.os, "lstat", lambda p: regular)
    with pytest.raises(safe_open.Refused, match=REASONS[swapped_in]):
        safe_open.read_file(path, 1000)


def test_open_checked_never_truncates_before_the_check(secret):
    with pytest.raises(ValueError):
        safe_open.open_checked(secret, os.O_WRONLY | os.O_TRUNC)
    assert secret.read_bytes() == b"root only\n"


def test_permission_bits_come_from_the_file_itself_without_07000(tmp_path, secret):
    path = tmp_path / "f"
    path.write_text("")
    path.chmod(0o4755)
    assert safe_open.permission_bits(path, 0o600) == 0o755
    path.chmod(0o2640 | stat.S_ISVTX)
    assert safe_open.permission_bits(path, 0o600) == 0o640
    secret.chmod(0o604)
    os.symlink(secret, tmp_path / "link")  # never through a link: the default
    assert safe_open.permission_bits(tmp_path / "link", 0o600) == 0o600
    os.mkfifo(tmp_path / "fifo", 0o666)
    assert safe_open.permission_bits(tmp_path / "fifo", 0o600) == 0o600
    assert safe_open.permission_bits(tmp_path / "missing", 0o4644) == 0o644


def test_atomic_write_never_sets_07000(tmp_path):
    write_file_atomic(tmp_path / "f", b"x", mode=0o6755)
    assert stat.S_IMODE(os.lstat(tmp_path / "f").st_mode) == 0o755


# -- outfiles (findings 1 and 7) ----------------------------------------------------------

def test_outfile_rewrite_drops_a_setuid_bit_and_ignores_a_link_target_mode(tmp_path, secret):
    target = tmp_path / "out"
    target.write_text("old\n")
    target.chmod(0o4755)  # what the owner of the outfile's directory can do
    outfile.write_text(str(target), "\x7fELF...")
    st = os.lstat(target)
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == os.geteuid()
    secret.chmod(0o4777)
    linked = tmp_path / "linked"
    os.symlink(secret, linked)
    outfile.write_text(str(linked), "new\n")
    assert stat.S_IMODE(os.lstat(linked).st_mode) == outfile.NEW_MODE
    assert secret.read_bytes() == b"root only\n"  # replaced the link, not the target


@pytest.mark.parametrize("kind", KINDS)
def test_outfile_that_cannot_be_read_is_unreadable_at_once(tmp_path, secret, kind):
    path = planted(tmp_path, kind, secret)
    started = time.monotonic()
    with pytest.raises(outfile.Unreadable, match=REASONS[kind]):
        outfile.read_text(str(path))
    assert time.monotonic() - started < 1.0


def test_outfile_too_big_or_not_utf8_is_unreadable_and_missing_is_none(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"a" * (outfile.MAX_OUTFILE + 1))
    with pytest.raises(outfile.Unreadable, match="at most"):
        outfile.read_text(str(big))
    (tmp_path / "latin").write_bytes(b"\xff")
    with pytest.raises(outfile.Unreadable, match="not UTF-8"):
        outfile.read_text(str(tmp_path / "latin"))
    assert outfile.read_text(str(tmp_path / "missing")) is None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to act as another user")
def test_outfile_eacces_is_unreadable(tmp_path, secret):
    """Read as uid 65534: EACCES is Unreadable too."""
    os.chmod(tmp_path, 0o755)
    script = ("from chariotd.services import outfile\n"
              f"try: outfile.read_text({str(secret)!r})\n"
              "except outfile.Unreadable as error: print(error)\n")
    result = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                             "--clear-groups", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=30)
    assert "Permission denied" in result.stdout, result.stderr


# -- notify-pending markers (finding 7) ---------------------------------------------------

def test_a_fifo_at_the_marker_is_never_opened(tmp_path):
    target = str(tmp_path / "out")
    os.mkfifo(pending.marker_path(target))
    started = time.monotonic()
    pending.mark(target)  # O_EXCL: what is there counts as the marker; never opened
    assert time.monotonic() - started < 1.0
    assert pending.is_marked(target)
    pending.clear(target)
    assert not os.path.lexists(pending.marker_path(target))
    pending.mark(target)
    assert stat.S_ISREG(os.lstat(pending.marker_path(target)).st_mode)


def test_a_symlink_at_the_marker_is_not_followed(tmp_path, secret):
    target = str(tmp_path / "out")
    os.symlink(tmp_path / "created-through-link", pending.marker_path(target))
    pending.mark(target)
    assert not (tmp_path / "created-through-link").exists()


# -- subscribe-write (finding 2) ----------------------------------------------------------

class FakeLoop:
    def call_later(self, delay, callback):
        callback()

    def forget(self, key):
        pass

    def set_writer(self, fd, callback):
        raise AssertionError("the message fits at once")


def write_once(path, payload=b"message"):
    WriteSubscription("t", str(path), FakeLoop()).deliver("t", payload)


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "directory"])
def test_subscribe_write_never_writes_or_truncates_through_a_planted_path(
        tmp_path, secret, kind, caplog):
    path = planted(tmp_path, kind, secret)
    write_once(path)
    assert secret.read_bytes() == b"root only\n"
    assert REASONS[kind] in caplog.text and "dropped" in caplog.text


def test_subscribe_write_truncates_a_regular_file_and_feeds_a_fifo(tmp_path):
    regular = tmp_path / "regular"
    regular.write_bytes(b"a longer old content\n")
    write_once(regular)
    assert regular.read_bytes() == b"message"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_once(fifo)
        assert os.read(reader, 100) == b"message"
    finally:
        os.close(reader)


def test_subscribe_write_to_a_fifo_without_reader_does_not_block(tmp_path, caplog):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    write_once(fifo)
    assert time.monotonic() - started < 1.0 and "no reader" in caplog.text


# -- the fleet-provisioning outfile (finding 10) ------------------------------------------

def write_provisioning_outfile(path):
    from types import SimpleNamespace

    from chariotd.provisioning import fleetprov
    from chariotd.provisioning.claim import Provisioning

    config = fleetprov.FleetProv("claim", "t", outfile=str(path), outformat="JSON")
    Provisioning._write_outfile(SimpleNamespace(fleetprov=config),
                                fleetprov.Registered("thing1", {"k": "v"}))


def test_provisioning_outfile_is_0600_when_new_and_keeps_its_own_bits(tmp_path, secret):
    path = tmp_path / "provisioned.json"
    write_provisioning_outfile(path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    path.chmod(0o6640)
    write_provisioning_outfile(path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o640
    assert '"thing1"' in path.read_text()
    path.unlink()
    secret.chmod(0o644)
    os.symlink(secret, path)  # a link's target lends no bits
    write_provisioning_outfile(path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert secret.read_bytes() == b"root only\n"


def test_the_certstores_endpoint_may_be_a_link_but_never_a_fifo(tmp_path):
    """The certstore is root's: endpoint.txt may link to a shared file (as with the
    original chariotd); a FIFO there is still refused at once, never waited on."""
    from chariotd.certstore import Certstore, CertstoreError
    shared = tmp_path / "endpoint-shared.txt"
    shared.write_text("iot.example.com:443\n")
    store = tmp_path / "certs"
    store.mkdir()
    os.symlink(shared, store / "endpoint.txt")
    assert Certstore(store).endpoint() == ("iot.example.com", 443)
    os.unlink(store / "endpoint.txt")
    os.mkfifo(store / "endpoint.txt")
    with pytest.raises(CertstoreError, match="FIFO"):
        Certstore(store).endpoint()
