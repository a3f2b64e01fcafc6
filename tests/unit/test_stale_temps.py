"""What a process killed between creating and renaming a temp file leaves is removed
at the next start: fsutil.remove_stale_temps, Certstore.sweep."""

from __future__ import annotations

import os

from chariotd.kernel import fsutil
from chariotd.certstore import Certstore


def test_only_the_temp_names_of_that_file_from_other_pids_go(tmp_path):
    target = tmp_path / "foo.rc"
    target.write_text("a='1'\n")
    stale = [".foo.rc.tmp-1", ".foo.rc.tmp-4194303"]
    kept = [f".foo.rc.tmp-{os.getpid()}", ".foo.rc.tmp-x1", ".bar.rc.tmp-1", "foo.rc.tmp-1",
            ".foo.rc.tmp-"]
    for name in stale + kept:
        (tmp_path / name).write_text("partial")
    os.symlink("nowhere", tmp_path / ".foo.rc.tmp-7")
    (tmp_path / ".foo.rc.tmp-8").mkdir()  # not ours to remove
    assert sorted(fsutil.remove_stale_temps(target)) == sorted(stale + [".foo.rc.tmp-7"])
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["foo.rc", ".foo.rc.tmp-8"])
    assert fsutil.remove_stale_temps(tmp_path / "missing-dir" / "x") == []


def test_certstore_sweep(tmp_path):
    store = Certstore(tmp_path)
    (tmp_path / "endpoint.txt").write_text("localhost\n")
    (tmp_path / ".adding-abc-12").mkdir()
    (tmp_path / ".adding-abc-12" / "abc-private.pem.key").write_text("half")
    os.symlink("abc", tmp_path / ".preferred.tmp-12")
    (tmp_path / "..replacing.tmp-12").write_text("ab")
    (tmp_path / "abc").mkdir()
    assert sorted(store.sweep()) == sorted([".adding-abc-12", ".preferred.tmp-12",
                                            "..replacing.tmp-12"])
    assert sorted(os.listdir(tmp_path)) == ["abc", "endpoint.txt"]
