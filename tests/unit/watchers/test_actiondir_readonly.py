"""ActionDir.remove when new/ will not let a finished file go (read-only file system):
logged, kept for the next start, skipped by rescans; a new file under the name counts."""

from __future__ import annotations

import errno
import logging
import os

from chariotd.watchers.actiondir import ActionDir


def test_a_file_that_cannot_be_removed_is_logged_and_skipped_by_rescans(tmp_path, monkeypatch,
                                                                         caplog):
    for sub in ("tmp", "new", "failed"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / "a").write_text("x")
    (tmp_path / "new" / "b").write_text("y")
    actiondir = ActionDir(str(tmp_path))
    real_unlink = os.unlink

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(os, "unlink", read_only)
    with caplog.at_level(logging.ERROR):
        actiondir.remove("a")
    assert "a: cannot remove it from new/ (Read-only file system)" in caplog.text
    assert actiondir.scan() == ["b"]
    monkeypatch.setattr(os, "unlink", real_unlink)
    os.rename(tmp_path / "new" / "b", tmp_path / "tmp" / "a2")
    os.rename(tmp_path / "tmp" / "a2", tmp_path / "new" / "a")  # a new file named a
    assert actiondir.arrivals(lambda: None) == ["a"]
    assert actiondir.scan() == ["a"]
    actiondir.close()
