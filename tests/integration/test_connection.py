"""Connecting: TLS verification, certificates, the preferred symlink and rotation."""

from __future__ import annotations

import os

from conftest import make_certstore, start_broker
from chariotd.sim import pki


def test_broker_certificate_from_another_ca_is_refused(daemons, test_pki, rogue_pki,
                                                       tmp_path):
    rogue = start_broker(rogue_pki, tmp_path / "rogue-broker")
    try:
        certstore = make_certstore(test_pki, tmp_path / "certstore", rogue.endpoint)
        daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                          f"--certstore={certstore}"], tmp_path)
        daemon.wait_log(r"certificate verify failed")
        assert "connected to" not in daemon.log()
    finally:
        rogue.stop()


def test_hostname_is_verified(daemons, test_pki, broker, tmp_path):
    # The server certificate names localhost and 127.0.0.1, not 127.0.0.2.
    certstore = make_certstore(test_pki, tmp_path / "certstore", f"127.0.0.2:{broker.port}")
    daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                      f"--certstore={certstore}"], tmp_path)
    daemon.wait_log(r"cannot connect to 127\.0\.0\.2")
    assert "connected to" not in daemon.log()


def test_preferred_symlink_is_created(daemons, base_args, certstore, tmp_path):
    assert not (certstore / "preferred").exists()
    daemons(base_args, tmp_path).wait_connected()
    target = os.readlink(certstore / "preferred")
    assert (certstore / target / f"{target}-certificate.pem.crt").is_file()


def test_repeated_failures_rotate_preferred_and_exit_1(daemons, test_pki, rogue_pki, broker,
                                                       tmp_path):
    certstore = tmp_path / "certstore"
    good_id = pki.write_certstore(certstore, broker.endpoint, *test_pki.ca.issue_client("dev1"))
    bad_id = pki.write_certstore(certstore, broker.endpoint, *rogue_pki.ca.issue_client("dev1"))
    os.symlink(bad_id, certstore / "preferred")
    args = ["--clientid=dev1", f"--cacert={test_pki.cafile}", f"--certstore={certstore}"]
    env = {"CHARIOTD_BACKOFF_BASE": "0.05"}
    daemon = daemons(args, tmp_path, env=env)
    assert daemon.wait_exit(20) == 1
    assert "6 connection failures in a row; preferred certificate is now" in daemon.log()
    assert os.readlink(certstore / "preferred") == good_id
    # The restart (what runit does) uses the other certificate.
    daemons(args, tmp_path, env=env).wait_connected()


def test_no_certificate_exits_1_after_10_seconds(daemons, test_pki, broker, tmp_path):
    certstore = tmp_path / "empty-store"
    certstore.mkdir()
    (certstore / "endpoint.txt").write_text(broker.endpoint + "\n")
    daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                      f"--certstore={certstore}"], tmp_path)
    daemon.wait_log(r"no certificate in certstore")
    import time
    started = time.monotonic()
    assert daemon.wait_exit(15) == 1
    assert time.monotonic() - started > 8


def test_unanswered_shadow_requests_count_as_failures(daemons, base_args, tmp_path):
    """A broker without the shadow service: every get times out; more than 5 in a row
    end the tree with status 1, as connection failures do."""
    daemon = daemons([*base_args, f"--updates=dev1:{tmp_path / 'upd'}"], tmp_path,
                     env={"CHARIOTD_REQUEST_TIMEOUT": "0.2"})
    assert daemon.wait_exit(20) == 1
    log = daemon.log()
    assert "no answer to the shadow get" in log
    assert "the shadow get of dev1 timed out; 6 connection failures in a row" in log
