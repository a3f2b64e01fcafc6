"""Fleet provisioning and the certificate lifecycle: the real chariotd tree against
chariotd-sim (claim certificate, CreateKeysAndCertificate / CreateCertificateFromCsr,
RegisterThing), then connecting with the new certificate."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from chariotd.sim import pki
from support import kill_tree_mid_command, wait_until, write_message

SERIAL = "0001"
THING = f"sim-{SERIAL}"
# Short delays for the tests only (the devices never set these).
FAST = {"CHARIOTD_BACKOFF_BASE": "0.01", "CHARIOTD_FLEETPROV_PAUSE": "0.3"}


def write_config(tmp_path: Path, sim, **extra) -> Path:
    doc = {"claimstore": str(sim.claimstore), "template": "chariotd-sim",
           "parameters": {"SerialNumber": SERIAL}}
    doc.update(extra)
    path = tmp_path / "fleetprov.json"
    path.write_text(json.dumps(doc))
    return path


def empty_certstore(tmp_path: Path, sim) -> Path:
    store = tmp_path / "certs"
    store.mkdir(mode=0o700)
    (store / "endpoint.txt").write_text(sim.endpoint + "\n")
    return store


def args(sim, certstore, config, *extra):
    return [f"--clientid=dev-{SERIAL}", f"--cacert={sim.cafile}", f"--certstore={certstore}",
            f"--fleetprov={config}", "--log-level=debug", *extra]


def certificate_dirs(store: Path):
    return sorted(p.name for p in store.iterdir() if p.is_dir() and not p.is_symlink())


def assert_provisioned(store: Path) -> str:
    """The certstore holds exactly one certificate, stored safely and preferred."""
    names = certificate_dirs(store)
    assert len(names) == 1, names
    cert_id = names[0]
    directory = store / cert_id
    key = directory / f"{cert_id}-private.pem.key"
    assert (directory / f"{cert_id}-certificate.pem.crt").is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert os.readlink(store / "preferred") == cert_id
    assert pki.certificate_id((directory / f"{cert_id}-certificate.pem.crt").read_bytes()) \
        == cert_id
    return cert_id


def assert_no_secrets(log: str, sim) -> None:
    assert "PRIVATE KEY" not in log
    assert "-----BEGIN" not in log
    tokens = [c["certificateOwnershipToken"] for c in sim.store.certificates()]
    assert tokens
    for token in tokens:
        assert token not in log


def use_shadow(daemons, sim, store: Path, tmp_path: Path, thing: str = THING):
    """A second start connects with the provisioned certificate and updates THING's shadow."""
    updates = tmp_path / "updates"
    daemon = daemons([f"--clientid=dev-{SERIAL}", f"--cacert={sim.cafile}",
                      f"--certstore={store}", f"--updates={thing}:{updates}"], tmp_path)
    daemon.wait_connected()
    write_message(updates, "hello", json.dumps({"from": "provisioned"}))
    wait_until(lambda: (sim.get_shadow(thing) or {}).get("state", {}).get("reported", {})
               .get("hello") == {"from": "provisioned"}, message="the update in the shadow")
    return daemon


def test_first_boot_create_keys_outfile_notify_then_connect(sim, daemons, tmp_path):
    store = empty_certstore(tmp_path, sim)
    outfile, notified = tmp_path / "provisioned.json", tmp_path / "notified"
    config = write_config(tmp_path, sim, outfile=str(outfile), outformat="JSON",
                          notifycmd=f"echo done >> {notified}")
    daemon = daemons(args(sim, store, config), tmp_path)
    assert daemon.wait_exit(20) == 0
    log = daemon.log()
    assert "link: provisioning: asking for a certificate (CreateKeysAndCertificate)" in log
    cert_id = assert_provisioned(store)
    assert json.loads(outfile.read_text()) == {
        "thing": THING, "configuration": {"serial": SERIAL, "greeting": "hello"}}
    assert notified.read_text() == "done\n"
    assert outfile.stat().st_mode & 0o7777 == 0o600  # new: private (issue 12, finding 10)
    assert [t["thingName"] for t in sim.things()] == [THING]
    registered = [c for c in sim.store.certificates() if c["certificateId"] == cert_id]
    assert registered and registered[0]["status"] == "ACTIVE"
    assert_no_secrets(log, sim)

    use_shadow(daemons, sim, store, tmp_path)


def test_a_notify_interrupted_by_a_kill_runs_again_after_the_restart(sim, daemons, tmp_path):
    """SIGKILL after the certificate was stored but before the notify command finished:
    the next start connects with the new certificate and runs the command again."""
    store = empty_certstore(tmp_path, sim)
    notified, flag, pidfile = tmp_path / "notified", tmp_path / "slept", tmp_path / "pid"
    config = write_config(tmp_path, sim, notifycmd=(
        f"echo done >> {notified}; [ -e {flag} ] && exit 0; touch {flag}; "
        f"echo $$ > {pidfile}; exec sleep 30"))
    daemon = daemons(args(sim, store, config), tmp_path, env=FAST)
    kill_tree_mid_command(daemon, pidfile)
    assert_provisioned(store)
    assert (store / ".provisioning.notify-pending").exists()
    daemon = daemons(args(sim, store, config), tmp_path, env=FAST)
    daemon.wait_connected()
    wait_until(lambda: notified.read_text() == "done\ndone\n", message="notified again")
    wait_until(lambda: not (store / ".provisioning.notify-pending").exists(),
               message="the marker removed")
    assert "did not finish before chariotd stopped; running it again" in daemon.log()


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ('{"claimstore": "@claim", "template": "t"}', "'parameters' is required"),
    ('{"claimstore": "@claim", "template": "t", "parameters": []}',
     "'parameters' must be an object"),
    ('{"claimstore": "@claim", "template": 7, "parameters": {}}',
     "'template' must be a non-empty string"),
    ('{"claimstore": "@claim", "template": "t", "parameters": {}, "outfile": "/x",'
     ' "outformat": "YAML"}', "'outformat' 'YAML' is not one of JSON, SHELL"),
    ('{"claimstore": "@claim", "template": "t", "parameters": {}, "outfile": "/x"}',
     "'outfile' and 'outformat' go together"),
    ('{"claimstore": "@tmp/nowhere", "template": "t", "parameters": {}}',
     "claimstore @tmp/nowhere is not a directory"),
    ('{"claimstore": "@tmp", "template": "t", "parameters": {}}',
     "cannot read endpoint.txt"),
    ('{"claimstore": "@empty", "template": "t", "parameters": {}}', "holds no certificate"),
])
def test_bad_configs_exit_2_with_one_line(sim, tmp_path, content, message):
    import subprocess

    from support import CHARIOTD
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "endpoint.txt").write_text(sim.endpoint)
    config = tmp_path / "fp.json"
    replace = {"@claim": str(sim.claimstore), "@tmp": str(tmp_path), "@empty": str(empty)}
    for key, value in replace.items():
        content, message = content.replace(key, value), message.replace(key, value)
    config.write_text(content)
    result = subprocess.run([CHARIOTD, *args(sim, empty_certstore(tmp_path, sim), config)],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"chariotd: error: --fleetprov={config}: ")
    assert message in lines[0]


def test_first_boot_by_csr_key_made_on_the_device(sim, daemons, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    store = empty_certstore(tmp_path, sim)
    outfile = tmp_path / "provisioned.rc"
    outfile.write_text("")
    outfile.chmod(0o4640)  # kept, 07000 dropped (issue 12, finding 10)
    config = write_config(tmp_path, sim, csr=True, outfile=str(outfile), outformat="SHELL")
    daemon = daemons(args(sim, store, config), tmp_path)
    assert daemon.wait_exit(20) == 0
    log = daemon.log()
    assert "(CreateCertificateFromCsr; the private key stays on the device)" in log
    cert_id = assert_provisioned(store)
    key = load_pem_private_key((store / cert_id / f"{cert_id}-private.pem.key").read_bytes(),
                               None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert outfile.read_text() == ("configuration_greeting='hello'\n"
                                   f"configuration_serial='{SERIAL}'\nthing='{THING}'\n")
    assert outfile.stat().st_mode & 0o7777 == 0o640
    assert_no_secrets(log, sim)
    use_shadow(daemons, sim, store, tmp_path)


def test_rejected_template_is_logged_retried_then_exit_1(sim, daemons, tmp_path):
    store = empty_certstore(tmp_path, sim)
    config = write_config(tmp_path, sim, parameters={})  # the template needs SerialNumber
    daemon = daemons(args(sim, store, config), tmp_path, env=FAST)
    assert daemon.wait_exit(30) == 1
    log = daemon.log()
    rejected = ("RegisterThing rejected: 400 InvalidParameters: "
                "Missing required parameter: SerialNumber")
    assert log.count(rejected) == 6, log  # the first attempt and five retries
    assert "retrying in" in log and "(failure 5 of 5)" in log
    assert "link: error: provisioning: giving up; exiting in 0.3 s" in log
    assert certificate_dirs(store) == []
    assert not (store / "preferred").exists()
    assert_no_secrets(log, sim)


def test_claim_rotation_when_the_broker_refuses_a_claim_certificate(sim, daemons, tmp_path,
                                                                     rogue_pki):
    # Two claim certificates: the preferred one from another CA (refused at the TLS
    # handshake), the other the simulator's.
    claimstore = tmp_path / "claim"
    shutil.copytree(sim.claimstore, claimstore, symlinks=True)
    (claimstore / "preferred").unlink(missing_ok=True)
    good_id = certificate_dirs(claimstore)[0]
    cert, key = rogue_pki.ca.issue_client("claim")
    rogue_id = pki.write_certstore(claimstore, sim.endpoint, cert, key)
    os.symlink(rogue_id, claimstore / "preferred")
    store = empty_certstore(tmp_path, sim)
    config = write_config(tmp_path, sim, claimstore=str(claimstore))

    first = daemons(args(sim, store, config), tmp_path, env=FAST)
    assert first.wait_exit(30) == 1
    log = first.log()
    refused = re.findall(r"connection closed before the CONNACK \(.*\) with claim "
                         rf"certificate {rogue_id[:12]}", log)
    assert len(refused) == 6, log
    assert f"preferred claim certificate is now {good_id[:12]}" in log
    assert os.readlink(claimstore / "preferred") == good_id
    assert certificate_dirs(store) == []

    second = daemons(args(sim, store, config), tmp_path, env=FAST)
    assert second.wait_exit(20) == 0
    assert f"with claim certificate {good_id[:12]}" in second.log()
    assert_provisioned(store)


def test_reprovision_while_connected_then_restart_with_the_new_certificate(sim, daemons,
                                                                         tmp_path):
    store = sim.device(THING)  # the device already has a certificate for its thing
    old_id = certificate_dirs(store)[0]
    commands = tmp_path / "commands"
    config = write_config(tmp_path, sim)
    daemon = daemons(args(sim, store, config, f"--commands={commands}"), tmp_path)
    daemon.wait_connected()
    write_message(commands, "reprovision", "")
    assert daemon.wait_exit(20) == 0
    log = daemon.log()
    assert "link: provisioning: reprovision requested" in log
    assert "connection lost" not in log  # the device stayed connected meanwhile
    assert os.listdir(commands / "new") == [] and os.listdir(commands / "failed") == []
    new_id = os.readlink(store / "preferred")
    assert new_id != old_id
    assert certificate_dirs(store) == sorted([old_id, new_id])  # kept until new connects
    assert stat.S_IMODE((store / new_id / f"{new_id}-private.pem.key").stat().st_mode) == 0o600
    assert_no_secrets(log, sim)

    again = use_shadow(daemons, sim, store, tmp_path)
    again.wait_log(rf"link: certificate {new_id[:12]} connected; removed the certificates "
                   rf"it replaced: {old_id[:12]}")
    assert f"connecting to {sim.endpoint} with certificate {new_id[:12]}" in again.log()
    assert certificate_dirs(store) == [new_id]
    assert not (store / ".replacing").exists()


def test_reprovision_without_fleetprov_is_refused(sim, daemons, tmp_path):
    store = sim.device("dev1")
    commands = tmp_path / "commands"
    daemon = daemons(["--clientid=dev1", f"--cacert={sim.cafile}", f"--certstore={store}",
                      f"--commands={commands}"], tmp_path)
    daemon.wait_connected()
    write_message(commands, "reprovision", "")
    wait_until(lambda: os.listdir(commands / "failed") == ["reprovision"],
               message="reprovision in failed/")
    assert "command 'reprovision' is not available" in daemon.log()
    assert daemon.process.poll() is None


def test_failed_reprovision_is_rejected_and_the_link_stays_up(sim, daemons, tmp_path):
    store = sim.device(THING)
    old_id = certificate_dirs(store)[0]
    commands = tmp_path / "commands"
    config = write_config(tmp_path, sim, parameters={})  # rejected by the template
    daemon = daemons(args(sim, store, config, f"--commands={commands}"), tmp_path, env=FAST)
    daemon.wait_connected()
    write_message(commands, "reprovision", "")
    wait_until(lambda: os.listdir(commands / "failed") == ["reprovision"], timeout=20,
               message="reprovision in failed/")
    log = daemon.log()
    assert "provisioning failed: RegisterThing rejected: 400 InvalidParameters" in log
    assert daemon.process.poll() is None and "connection lost" not in log
    assert certificate_dirs(store) == [old_id] and os.readlink(store / "preferred") == old_id


def test_a_new_certificate_that_cannot_connect_falls_back_to_the_old_one(
        sim, daemons, tmp_path, rogue_pki):
    """The state a reprovision leaves, with a new certificate the broker refuses: the
    link's failure rotation goes back to the old one, which is kept."""
    from chariotd.certstore import Certstore
    store = sim.device(THING)
    old_id = certificate_dirs(store)[0]
    cert, key = rogue_pki.ca.issue_client(THING)
    new_id = pki.certificate_id(cert)
    certstore = Certstore(store)
    certstore.add(new_id, cert, key)
    certstore.mark_replacing(new_id)
    certstore.set_preferred(new_id)
    base = [f"--clientid=dev-{SERIAL}", f"--cacert={sim.cafile}", f"--certstore={store}"]
    first = daemons(base, tmp_path, env=FAST)
    assert first.wait_exit(20) == 1
    assert f"preferred certificate is now {old_id[:12]}" in first.log()
    second = daemons(base, tmp_path, env=FAST)
    second.wait_connected()
    assert f"with certificate {old_id[:12]}" in second.log()
    assert certificate_dirs(store) == sorted([old_id, new_id])  # nothing removed
