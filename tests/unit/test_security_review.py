"""Security review checks that need no broker (issue 8, docs/security.md): private keys
0600 in 0700 directories on every path that writes one, whatever the umask; no flag
that turns TLS verification off; children get no secrets from the environment."""

from __future__ import annotations

import os
import stat

import pytest

from chariotd import cli
from chariotd.certstore import Certstore
from chariotd.sim import pki
from chariotd.sim.simulator import make_device, prepare
from chariotd.kernel.spawn import child_environment
from chariotd.aws.tunnel_request import TunnelRequest, proxy_environment
from chariotd.watchers.letterhead import generator_environment


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the modes must not depend on the caller's umask
    yield
    os.umask(old)


def test_certstore_add_key_0600_directory_0700(tmp_path, open_umask):
    cert, key = pki.CA.load_or_create(tmp_path / "ca").issue_client("dev1")
    store = tmp_path / "store"
    store.mkdir()
    added = Certstore(store).add("abc123", cert, key)
    assert mode(added.key_path) == 0o600 and mode(added.key_path.parent) == 0o700
    assert mode(added.cert_path) == 0o644


def test_sim_keys_and_certstores(tmp_path, open_umask):
    ca = pki.CA.load_or_create(tmp_path)
    assert mode(ca.key_path) == 0o600
    _, server_key = ca.issue_server(tmp_path)
    assert mode(server_key) == 0o600
    cert, key = ca.issue_client("dev1")
    cert_id = pki.write_certstore(tmp_path / "cs", "localhost:1", cert, key)
    assert mode(tmp_path / "cs") == 0o700 and mode(tmp_path / "cs" / cert_id) == 0o700
    assert mode(tmp_path / "cs" / cert_id / f"{cert_id}-private.pem.key") == 0o600


def test_simulator_directory_keys(tmp_path, open_umask):
    prepare(tmp_path / "sim", 8883)
    make_device(tmp_path / "sim", "dev1", 8883)
    keys = [p for p in (tmp_path / "sim").rglob("*") if p.is_file()
            and (p.name.endswith(".key") or "-private.pem.key" in p.name)]
    assert keys, "no key found"
    for key in keys:
        assert mode(key) == 0o600, key
        if "-private.pem.key" in key.name:
            assert mode(key.parent) == 0o700 and mode(key.parent.parent) == 0o700


def test_no_flag_turns_tls_verification_off():
    flags = [option for action in cli.build_parser()._actions for option in action.option_strings]
    risky = [flag for flag in flags if any(word in flag for word in (
        "insecure", "verify", "no-tls", "tls", "skip", "allow-any", "hostname"))]
    assert risky == []


SECRETS = {"AWS_SECRET_ACCESS_KEY": "s3cr3t-aws", "CHARIOTD_BACKOFF_BASE": "0.1",
           "MY_API_TOKEN": "s3cr3t-token", "DB_PASSWORD": "s3cr3t-pw",
           "GITHUB_CREDENTIALS": "s3cr3t-cred", "SSH_PRIVATE_KEY_FILE": "/k",
           "NOTIFY_SOCKET": "/run/notify", "WATCHDOG_USEC": "1"}


def test_no_child_gets_a_secret_from_the_environment(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    notify = child_environment()  # notify, default shadow, subscribe-exec, fleetprov notify
    assert not set(SECRETS) & set(notify) and notify["LANG"] == "C.UTF-8"
    request = TunnelRequest("dev1", "eu-west-1", ("SSH",), "tunnel-token")
    proxy = child_environment(proxy_environment(request))
    assert not set(SECRETS) & set(proxy)
    assert proxy["AWSIOT_TUNNEL_ACCESS_TOKEN"] == "tunnel-token"
    letterhead = child_environment(generator_environment(
        topic="t", path="/p", mtime_ns=0, priority=None, slot=None, was_prioritised=False))
    assert not set(SECRETS) & set(letterhead) and letterhead["LANG"] == "C.UTF-8"
