"""Adding certificates to a certstore and retiring the ones a reprovision replaced."""

from __future__ import annotations

import os
import stat

import pytest

from chariotd import certstore as certstore_module
from chariotd.certstore import Certstore, CertstoreError
from chariotd.provisioning.keys import certificate_fits_key, new_key_and_csr


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "certs"
    path.mkdir()
    (path / "endpoint.txt").write_text("example.com\n")
    return Certstore(path)


def test_add_lays_out_the_certificate_safely(store):
    cert = store.add("abc123", b"CERT", b"KEY")
    directory = store.path / "abc123"
    assert cert.cert_path == directory / "abc123-certificate.pem.crt"
    assert cert.cert_path.read_bytes() == b"CERT" and cert.key_path.read_bytes() == b"KEY"
    assert stat.S_IMODE(cert.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(os.listdir(store.path)) == ["abc123", "endpoint.txt"]
    assert sorted(os.listdir(directory)) == ["abc123-certificate.pem.crt",
                                             "abc123-private.pem.key"]
    assert [c.id for c in store.certificates()] == ["abc123"]


def test_add_replaces_a_directory_of_the_same_id(store):
    store.add("abc", b"OLD", b"OLDKEY")
    store.add("abc", b"NEW", b"NEWKEY")
    assert (store.path / "abc" / "abc-certificate.pem.crt").read_bytes() == b"NEW"
    assert sorted(os.listdir(store.path)) == ["abc", "endpoint.txt"]


@pytest.mark.parametrize("bad", ["", "../x", ".hidden", "a/b", "preferred!"])
def test_add_refuses_ids_that_are_not_names(store, bad):
    with pytest.raises(CertstoreError):
        store.add(bad, b"C", b"K")


def test_a_failed_add_leaves_nothing(store, monkeypatch):
    calls = []

    def failing_write(path, data, mode=0o644):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data, mode)

    real_write = certstore_module.write_file_atomic
    monkeypatch.setattr(certstore_module, "write_file_atomic", failing_write)
    with pytest.raises(OSError):
        store.add("abc", b"CERT", b"KEY")
    assert sorted(os.listdir(store.path)) == ["endpoint.txt"]


def test_a_crash_left_over_is_swept(store):
    (store.path / ".adding-old-123").mkdir()
    (store.path / ".adding-old-123" / "half").write_text("x")
    assert store.certificates() == []
    store.add("new", b"C", b"K")
    assert sorted(os.listdir(store.path)) == ["endpoint.txt", "new"]


def test_retire_replaced_only_after_the_new_one_connected(store):
    store.add("old", b"C", b"K")
    store.add("new", b"C", b"K")
    store.mark_replacing("new")
    store.set_preferred("new")
    assert store.retire_replaced("old") == []  # the fallback connected: keep both
    assert [c.id for c in store.certificates()] == ["new", "old"]
    assert store.retire_replaced("new") == ["old"]
    assert [c.id for c in store.certificates()] == ["new"]
    assert not (store.path / ".replacing").exists()
    assert store.retire_replaced("new") == []  # nothing pending any more


def test_device_key_and_csr(tmp_path):
    from chariotd.sim import pki
    key_pem, csr_pem = new_key_and_csr("dev1")
    assert "BEGIN EC PRIVATE KEY" in key_pem and "CERTIFICATE REQUEST" in csr_pem
    cert_pem = pki.CA.load_or_create(tmp_path).sign_csr(csr_pem.encode(), "x").decode()
    assert certificate_fits_key(cert_pem, key_pem)
    assert not certificate_fits_key(cert_pem, new_key_and_csr("dev1")[0])
    assert not certificate_fits_key("junk", key_pem)
