"""StrictModes for service definitions: a definition names a command run as root (a
.py one is run at load), so a file or directory others could write is skipped with
its reason, whatever the kind (.py, .js, .json); a link, FIFO or device is never read."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from chariotd.services import definitions
from chariotd.services.definitions import DefinitionError, load_directory, load_file

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")

PY = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n" \
     "key = {key!r}\nnotifycmd = 'true'\nephemeraldata = True\n"
JS = "module.exports = {{ key: '{key}', notifycmd: 'true', ephemeraldata: true }}\n"
JSON = '{{"key": "{key}", "notifycmd": "true", "ephemeraldata": true}}'


def reason(owner: int, mode: int, what: str = "the file") -> str:
    return (f"not trusted: {what} is owned by uid {owner} with mode {mode:04o}; it must be "
            "owned by root and not writable by group or others (a definition names a "
            "command run as root)")


@pytest.fixture
def services(tmp_path) -> Path:
    directory = tmp_path / "svcs"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    return directory


@pytest.fixture(autouse=True)
def no_hang():
    """Fail instead of hanging if a load ever blocks (a FIFO opened for reading)."""
    def fail(*_):
        raise TimeoutError("loading definitions blocked")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def py(directory: Path, name: str, mode: int = 0o644) -> Path:
    path = directory / f"{name}.py"
    path.write_text(PY.format(marker=str(directory.parent / f"{name}.ran"), key=name))
    os.chmod(path, mode)
    return path


def ran(directory: Path, name: str) -> bool:
    return (directory.parent / f"{name}.ran").exists()


def test_root_files_with_a_normal_umask_load(services):
    old = os.umask(0o022)
    try:
        py(services, "good")
        (services / "b.js").write_text(JS.format(key="b"))
        (services / "c.json").write_text(JSON.format(key="c"))
        (services / "private.py").write_text("key='private'\nnotifycmd='x'\nephemeraldata=True\n")
        os.chmod(services / "private.py", 0o600)
    finally:
        os.umask(old)
    loaded, errors = load_directory(services)
    assert errors == [] and [d.key for d in loaded] == ["b", "c", "good", "private"]
    assert ran(services, "good")


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o664, 0o620, 0o602])
def test_a_py_writable_by_group_or_others_is_not_run(services, mode):
    bad = py(services, "bad", mode)
    py(services, "good")
    loaded, errors = load_directory(services)
    assert [d.key for d in loaded] == ["good"] and ran(services, "good")
    assert errors == [(str(bad), reason(0, mode))] and not ran(services, "bad")


@pytest.mark.parametrize("name, text", [("a.js", JS.format(key="a")),
                                        ("a.json", JSON.format(key="a"))])
def test_the_same_rule_for_js_and_json(services, name, text):
    (services / name).write_text(text)
    os.chmod(services / name, 0o666)
    with pytest.raises(DefinitionError) as info:
        load_file(services / name)
    assert str(info.value) == reason(0, 0o666)


@needs_root
def test_a_file_owned_by_another_user_is_not_run(services):
    bad = py(services, "bad")
    os.chown(bad, NOBODY, NOBODY)
    loaded, errors = load_directory(services)
    assert loaded == [] and errors == [(str(bad), reason(NOBODY, 0o644))]
    assert not ran(services, "bad")


@needs_root
@pytest.mark.parametrize("owner, mode", [(0, 0o777), (0, 0o775), (0, 0o1777),
                                         (NOBODY, 0o755)])
def test_a_directory_others_can_write_makes_every_file_untrusted(services, owner, mode):
    good = py(services, "good")
    (services / "b.js").write_text(JS.format(key="b"))
    os.chown(services, owner, owner)
    os.chmod(services, mode)
    loaded, errors = load_directory(services)
    why = reason(owner, mode, "its directory")
    assert loaded == [] and errors == [(str(services / "b.js"), why), (str(good), why)]
    assert not ran(services, "good")
    with pytest.raises(DefinitionError, match="its directory is owned by"):
        load_file(good)


@needs_root
def test_a_definition_of_the_daemons_own_user_loads(services, monkeypatch):
    monkeypatch.setattr(definitions.os, "geteuid", lambda: 4242)
    os.chown(services, 4242, 4242)
    path = py(services, "mine")
    os.chown(path, 4242, 4242)
    assert definitions.trusted_owners() == (0, 4242)
    assert load_file(path).key == "mine" and ran(services, "mine")


@needs_root
def test_another_users_file_is_refused_even_when_the_daemon_is_not_root(services,
                                                                       monkeypatch):
    monkeypatch.setattr(definitions.os, "geteuid", lambda: 4242)
    path = py(services, "theirs")
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    assert "owned by uid 65534" in str(info.value)
    assert "owned by root or uid 4242" in str(info.value)


def test_a_symlink_is_not_followed_even_to_a_trusted_file(services, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = py(elsewhere, "target")
    (services / "linked.py").symlink_to(target)
    loaded, errors = load_directory(services)
    assert loaded == [] and errors == [
        (str(services / "linked.py"),
         "not a regular file: a symbolic link (definitions are not read through links)")]
    assert not ran(elsewhere, "target")


def test_a_fifo_is_skipped_without_hanging(services):
    os.mkfifo(services / "fifo.py")
    os.mkfifo(services / "fifo.js", 0o600)
    py(services, "good")
    loaded, errors = load_directory(services)
    assert [d.key for d in loaded] == ["good"]
    assert errors == [(str(services / "fifo.js"), "not a regular file: a FIFO"),
                      (str(services / "fifo.py"), "not a regular file: a FIFO")]


@needs_root
def test_a_device_or_directory_is_skipped(services):
    os.mknod(services / "null.json", 0o600 | 0o020000, os.makedev(1, 3))
    (services / "sub.py").mkdir()
    loaded, errors = load_directory(services)
    assert loaded == [] and errors == [
        (str(services / "null.json"), "not a regular file: a character device"),
        (str(services / "sub.py"), "not a regular file: a directory")]


def test_a_huge_definition_is_refused_without_reading_it_all(services):
    path = services / "huge.json"
    with open(path, "wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NULs
    with pytest.raises(DefinitionError, match=f"larger than {definitions.MAX_DEFINITION_BYTES}"):
        load_file(path)


def test_the_checked_fd_is_the_one_read(services, monkeypatch):
    """Swapping the file for a world-writable one after the lstat is caught on the fd."""
    good = py(services, "swap")
    real_lstat = os.lstat

    def lstat_then_swap(name, *, dir_fd=None):
        result = real_lstat(name, dir_fd=dir_fd)
        if name == "swap.py":
            replacement = services / ".new"
            replacement.write_text(PY.format(marker=str(services.parent / "evil.ran"),
                                             key="swap"))
            os.chmod(replacement, 0o666)
            os.replace(replacement, good)
        return result

    monkeypatch.setattr(definitions.os, "lstat", lstat_then_swap)
    with pytest.raises(DefinitionError, match="mode 0666"):
        load_file(good)
    assert not (services.parent / "evil.ran").exists()
