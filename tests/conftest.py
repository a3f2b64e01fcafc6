"""Fixtures for the whole suite: a test CA, a real Mosquitto with TLS and client
certificates on a free loopback port (one per test), device certstores, the real
chariotd command, and a subscriber that sees every topic."""

from __future__ import annotations

from pathlib import Path

import pytest

from chariotd.sim import pki
from chariotd.sim.mosquitto import OPEN_ACL, SERVICE_USER, Mosquitto
from support import Daemon, Subscriber


class TestPKI:
    def __init__(self, directory: Path):
        self.directory = directory
        self.ca = pki.CA.load_or_create(directory)
        self.cafile = self.ca.cert_path
        self.server_cert, self.server_key = self.ca.issue_server(directory)
        self.service_cert, self.service_key = self.client_files(SERVICE_USER)

    def client_files(self, cn: str):
        cert, key = self.ca.issue_client(cn)
        cert_path = self.directory / f"{cn}.crt"
        key_path = self.directory / f"{cn}.key"
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        key_path.chmod(0o600)
        return cert_path, key_path


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def rogue_pki(tmp_path_factory) -> TestPKI:
    """A second, unrelated CA: what it signs must never be trusted."""
    return TestPKI(tmp_path_factory.mktemp("rogue-pki"))


def start_broker(test_pki: TestPKI, workdir: Path, **options) -> Mosquitto:
    return Mosquitto(workdir, test_pki.cafile, test_pki.server_cert, test_pki.server_key,
                     acl=options.pop("acl", OPEN_ACL), **options).start()


@pytest.fixture
def broker(test_pki, tmp_path):
    mosquitto = start_broker(test_pki, tmp_path / "broker")
    yield mosquitto
    mosquitto.stop()


def make_certstore(test_pki: TestPKI, path: Path, endpoint: str, cn: str = "dev1") -> Path:
    cert, key = test_pki.ca.issue_client(cn)
    pki.write_certstore(path, endpoint, cert, key)
    return path


@pytest.fixture
def certstore(test_pki, broker, tmp_path) -> Path:
    return make_certstore(test_pki, tmp_path / "certstore", broker.endpoint)


@pytest.fixture
def subscriber(test_pki, broker):
    sub = Subscriber(broker.host, broker.port, test_pki.cafile, test_pki.service_cert,
                     test_pki.service_key)
    yield sub
    sub.close()


@pytest.fixture
def daemons():
    """Start chariotd trees with `daemons(args, workdir)`; all are stopped afterwards."""
    started = []

    def start(args, workdir, env=None) -> Daemon:
        daemon = Daemon([str(a) for a in args], workdir, env=env).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
    for daemon in started:  # a state machine bug is logged, not raised, by a daemon
        if daemon.log_path.exists():  # a test may have removed its own directory
            assert "illegal transition" not in daemon.log(), daemon.log()


@pytest.fixture(autouse=True)
def strict_state_machines(monkeypatch):
    """In-process, an illegal connection state transition raises (connection.py)."""
    from chariotd.kernel.mqtt.connection import Connection
    monkeypatch.setattr(Connection, "strict", True)


@pytest.fixture
def base_args(test_pki, certstore):
    return ["--clientid=dev1", f"--cacert={test_pki.cafile}", f"--certstore={certstore}"]


@pytest.fixture
def sim(tmp_path):
    """chariotd-sim (Mosquitto + the shadow and provisioning services) on a free port."""
    from chariotd.sim import Simulator

    simulator = Simulator(tmp_path / "sim", port=0).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def no_engine(monkeypatch):
    """As on a device without `chariotd[js]`: importing the JavaScript engine fails.
    (Here, not in a conftest.py of a subfolder: tests/ is not a package, so a second
    conftest module would shadow this one for `from conftest import ...`.)"""
    import sys

    from chariotd.services import jsengine
    monkeypatch.setitem(sys.modules, jsengine.ENGINE_MODULE, None)
    monkeypatch.setattr(jsengine, "_engine", None)
