"""SIGKILL of the whole tree at random moments (issue 8), restarted each time as runit
would: during drains, shadow updates and fleet provisioning. Nothing may be lost, no
outfile or certificate may be partial or corrupt, and every request file must be
handled in the end. The campaigns live in tests/fault_campaigns.py."""

from __future__ import annotations

import pytest

import fault_campaigns as campaigns


@pytest.mark.slow
def test_sigkill_during_drains(test_pki, tmp_path):
    tally = campaigns.kill_drain(test_pki, tmp_path, rounds=20)
    print(tally.as_dict())
    assert tally.lost == 0 and tally.faults == 20


@pytest.mark.slow
def test_sigkill_during_shadow_updates(sim, tmp_path):
    tally = campaigns.kill_shadow(sim, tmp_path, rounds=20)
    print(tally.as_dict())
    assert tally.lost == 0 and tally.faults == 20


@pytest.mark.slow
def test_sigkill_during_fleet_provisioning(sim, tmp_path):
    tally = campaigns.kill_fleetprov(sim, tmp_path, rounds=20)
    print(tally.as_dict())
    assert tally.faults == 20 and tally.certificates_checked >= 20


def test_what_a_kill_mid_write_leaves_is_removed_at_the_next_start(sim, tmp_path):
    """The random kills above rarely land between a temp file's creation and its rename;
    this plants exactly what such a kill leaves (temp outfiles, a half-built certificate
    directory, a temp `preferred`, a killed tree's runtime directory) and starts once."""
    import os

    from support import Daemon, wait_until

    svcs, out = tmp_path / "svcs", tmp_path / "out"
    svcs.mkdir()
    out.mkdir()
    (svcs / "foo.js").write_text(campaigns.SERVICE.format(
        key="foo", outfile=out / "foo", outformat="JSON", notified=tmp_path / "notified"))
    certstore = sim.device("dev1")
    planted = {out: [".foo.tmp-4000001"], certstore: [".preferred.tmp-4000001",
                                                        ".adding-0123abc-4000001"]}
    (out / ".foo.tmp-4000001").write_text('{"half": ')
    os.symlink("0123abc", certstore / ".preferred.tmp-4000001")
    (certstore / ".adding-0123abc-4000001").mkdir()
    rundir_base = tmp_path / "rundir-base"
    rundir_base.mkdir()
    killed = Daemon(["--clientid=dev1", f"--cacert={sim.cafile}", f"--certstore={certstore}"],
                    tmp_path, env={"TMPDIR": str(rundir_base)}).start()
    killed.wait_connected()
    campaigns.kill_tree(killed)
    killed.stop()
    assert len(os.listdir(rundir_base)) == 1  # the killed tree's, left behind
    daemon = Daemon(["--clientid=dev1", f"--cacert={sim.cafile}", f"--certstore={certstore}",
                     f"--services=dev1:{svcs}"], tmp_path,
                    env={"TMPDIR": str(rundir_base)}).start()
    try:
        daemon.wait_log(r"shadow (fetched|created)")
        for directory, names in planted.items():
            for name in names:
                assert not os.path.lexists(directory / name), name
        assert len(os.listdir(rundir_base)) == 1  # only the running tree's
        log = daemon.log()
        assert "removed .foo.tmp-4000001" in log and "removed the runtime director" in log
        sim.set_desired("dev1", None, {"foo": {"a": 1}})
        wait_until(lambda: (out / "foo").exists())
        assert campaigns.temp_names(out) == []
    finally:
        daemon.stop()
