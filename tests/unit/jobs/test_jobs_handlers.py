"""The handler directory's trust rule (shared with service definitions: chariotd/trust.py)."""

import os

import pytest

from chariotd.kernel import trust
from chariotd.jobs.handlers import HandlerRefused, directory_problem, handler_path


@pytest.fixture
def handler_dir(tmp_path):
    directory = tmp_path / "handlers"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    handler = directory / "ok.sh"
    handler.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(handler, 0o755)
    return directory


def test_trusted_directory_and_handler(handler_dir):
    assert directory_problem(str(handler_dir)) is None
    assert handler_path(str(handler_dir), "ok.sh") == str(handler_dir / "ok.sh")


def test_directory_writable_by_others_or_owned_by_another_user(handler_dir):
    os.chmod(handler_dir, 0o775)
    assert "not writable by group or others" in directory_problem(str(handler_dir))
    with pytest.raises(HandlerRefused, match="handler directory"):
        handler_path(str(handler_dir), "ok.sh")
    os.chmod(handler_dir, 0o755)
    os.chown(handler_dir, 65534, 65534)
    assert "owned by uid 65534" in directory_problem(str(handler_dir))


def test_a_writable_parent_is_refused_a_sticky_root_one_is_not(tmp_path):
    parent = tmp_path / "open"
    parent.mkdir()
    (parent / "handlers").mkdir()
    os.chmod(parent, 0o777)
    assert "above it" in directory_problem(str(parent / "handlers"))
    os.chmod(parent, 0o1777)
    assert directory_problem(str(parent / "handlers")) is None


def test_missing_directory_is_a_problem(tmp_path):
    assert "No such file" in directory_problem(str(tmp_path / "none"))


@pytest.mark.parametrize("setup, words", [
    (lambda d: os.chmod(d / "ok.sh", 0o775), "not writable by group or others"),
    (lambda d: os.chown(d / "ok.sh", 65534, 65534), "owned by uid 65534"),
    (lambda d: os.chmod(d / "ok.sh", 0o644), "no execute bit"),
    (lambda d: (d / "ok.sh").unlink() or os.symlink("/bin/true", d / "ok.sh"),
     "a symbolic link"),
    (lambda d: (d / "ok.sh").unlink() or os.mkfifo(d / "ok.sh"), "a FIFO"),
    (lambda d: (d / "ok.sh").unlink(), "no handler"),
])
def test_untrusted_handlers_are_refused(handler_dir, setup, words):
    setup(handler_dir)
    with pytest.raises(HandlerRefused) as caught:
        handler_path(str(handler_dir), "ok.sh")
    assert words in str(caught.value)


@pytest.mark.parametrize("name", [".hidden", "../ok.sh", "a/b", "", "x\0"])
def test_names_that_never_run(handler_dir, name):
    with pytest.raises(HandlerRefused):
        handler_path(str(handler_dir), name)


def test_untrusted_text_matches_the_service_definitions_wording(tmp_path):
    st = os.stat(tmp_path)
    os.chmod(tmp_path, 0o777)
    reason = trust.untrusted(os.stat(tmp_path), "its directory",
                             "a definition names a command run as root")
    assert reason == (f"not trusted: its directory is owned by uid {st.st_uid} with mode "
                      "0777; it must be owned by root and not writable by group or others "
                      "(a definition names a command run as root)")
