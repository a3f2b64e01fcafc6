"""Security of the real tree (docs/security.md): the runtime IPC directory is private
(another local user cannot reach a mailbox), every command chariotd starts (notify,
default shadow, letterhead generator, subscribe-exec, tunnel proxy) runs without the
daemon's secrets in its environment, and a run with every feature at debug level logs
no secret."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from support import wait_until, write_message

NOBODY = 65534
SECRETS = {"AWS_SECRET_ACCESS_KEY": "s3cr3t-aws-9f1", "MY_API_TOKEN": "s3cr3t-token-9f2",
           "DB_PASSWORD": "s3cr3t-pw-9f3", "CHARIOTD_DEPLOY_KEY": "s3cr3t-key-9f4",
           # names a denylist missed (issue 12): only an allowlist keeps them out
           "API_KEY": "s3cr3t-api-9f6", "DB_PASS": "s3cr3t-db-9f7",
           "SSH_AUTH_SOCK": "/tmp/s3cr3t-agent-9f8", "PLAIN_SETTING": "s3cr3t-plain-9f9"}
TUNNEL_TOKEN = "tunnel-s3cr3t-9f5"


def connect_as(uid: int, path: str) -> str:
    """Try to connect to the UNIX socket PATH as UID (in a forked child); the errno
    name, or 'connected'."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(path)
                result = "connected"
            except OSError as error:
                result = os.strerror(error.errno)
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as f:
        return f.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_reach_the_mailboxes(daemons, base_args, tmp_path):
    base = tempfile.mkdtemp(prefix="chariotd-sec-")  # world-traversable, as /run is
    os.chmod(base, 0o755)
    try:
        daemon = daemons([*base_args, f"--messages={tmp_path / 'mqtt'}"], tmp_path,
                         env={"RUNTIME_DIRECTORY": base})
        daemon.wait_connected()
        rundirs = [p for p in Path(base).iterdir() if p.name.startswith("chariotd-")]
        assert len(rundirs) == 1
        rundir = rundirs[0]
        assert stat.S_IMODE(rundir.stat().st_mode) == 0o700 and rundir.stat().st_uid == 0
        sockets = [p for p in rundir.iterdir() if stat.S_ISSOCK(p.lstat().st_mode)]
        assert {p.name for p in sockets} >= {"link", "msg0"}
        for path in sockets:
            assert connect_as(NOBODY, str(path)) == os.strerror(13)  # EACCES
        # The owner can connect; garbage sent through is dropped at decode, no crash.
        before = sorted(daemon.children())
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(rundir / "link"))
            sock.sendall(b"\xff" * 64 + b"\x00" * 64)
        write_message(tmp_path / "mqtt", "after", '{"topic": "t/after", "payload": 1}')
        wait_until(lambda: not (tmp_path / "mqtt" / "new" / "after").exists(),
                   message=lambda: daemon.log())
        assert sorted(daemon.children()) == before
    finally:
        shutil.rmtree(base, ignore_errors=True)


DUMP = """#!/bin/sh
env > {directory}/{name}.$$.env
cat > /dev/null
"""
PROXY = """#!{python}
import os, signal
with open({path!r}, "w") as f:
    f.write("".join(f"{{k}}={{v}}\\n" for k, v in os.environ.items()))
signal.pause()
"""


def test_children_get_no_secrets_and_logs_hold_none(sim, daemons, tmp_path):
    envs = tmp_path / "envs"
    envs.mkdir()
    scripts = {}
    for name in ("notify", "defaultshadow", "letterhead", "subexec"):
        script = tmp_path / f"{name}.sh"
        script.write_text(DUMP.format(directory=envs, name=name))
        script.chmod(0o755)
        scripts[name] = script
    (tmp_path / "letterhead.sh").write_text(
        DUMP.format(directory=envs, name="letterhead").replace("cat > /dev/null",
                                                               "echo '{}'"))
    proxy = tmp_path / "localproxy"
    proxy.write_text(PROXY.format(python=sys.executable, path=str(envs / "proxy.env")))
    proxy.chmod(0o755)
    svcs, out, mqtt = tmp_path / "svcs", tmp_path / "out", tmp_path / "mqtt"
    svcs.mkdir()
    out.mkdir()
    svcs.joinpath("cfg.js").write_text(textwrap.dedent(f"""\
        module.exports = {{ key: 'cfg', outfile: '{out / "cfg"}', outformat: 'SHELL',
                            notifycmd: '{scripts["notify"]}' }}
        """))
    updates, commands = tmp_path / "updates", tmp_path / "cmd"
    certstore = sim.device("dev1")
    daemon = daemons([
        "--clientid=dev1", f"--cacert={sim.cafile}", f"--certstore={certstore}",
        "--log-level=debug", f"--services=dev1:{svcs}", f"--updates=dev1:{updates}",
        f"--defaultshadow=dev1:{scripts['defaultshadow']}", f"--messages={mqtt}",
        f"--default-letterhead-generator={tmp_path / 'letterhead.sh'}",
        f"--commands={commands}", f"--subscribe-exec=dev1/in:{scripts['subexec']}",
        f"--subscribe-write=dev1/fifo:{tmp_path / 'nofifo'}",
        "--tunnelmappings=dev1:SSH=22", f"--tunnelproxy={proxy}",
        "--last-will-topic=dev1/status", "--last-will-payload=gone"],
        tmp_path, env={**SECRETS, "LC_TIME": "C.UTF-8", "TZ": "UTC"})
    daemon.wait_log(r"shadow (fetched|created)", timeout=20)
    sim.set_desired("dev1", None, {"cfg": {"a": "1"}})
    write_message(mqtt, "m1", '{"topic": "dev1/out", "payload": {"k": 1}}')
    (updates / "tmp" / "cfg.1").write_text('{"b": 2}')
    os.rename(updates / "tmp" / "cfg.1", updates / "new" / "cfg.1")
    sim.publish("dev1/in", b"payload")
    sim.publish("dev1/fifo", b"payload")
    sim.notify_tunnel("dev1", services=["SSH"], token=TUNNEL_TOKEN)
    write_message(commands, "open-tunnel", json.dumps(
        {"thing": "dev1", "region": "r", "services": ["SSH"], "token": TUNNEL_TOKEN}))
    write_message(commands, "refetch", "")
    expected = ("notify", "defaultshadow", "letterhead", "subexec", "proxy")
    wait_until(lambda: all(any(p.name.startswith(n) for p in envs.iterdir())
                           for n in expected), timeout=20,
               message=lambda: f"{sorted(p.name for p in envs.iterdir())}\n{daemon.log()}")
    wait_until(lambda: not list((commands / "new").iterdir()), message="commands done")
    for path in envs.iterdir():
        text = path.read_text()
        for name, value in SECRETS.items():
            assert value not in text and f"{name}=" not in text, (path.name, name)
        if path.name.startswith("proxy"):
            assert f"AWSIOT_TUNNEL_ACCESS_TOKEN={TUNNEL_TOKEN}" in text
        else:
            assert TUNNEL_TOKEN not in text, path.name
        # the allowlist (chariotd/kernel/spawn.py) for every child, letterhead and proxy too
        assert "LC_TIME=C.UTF-8" in text and "TZ=UTC" in text, path.name
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(10) == 0
    log = daemon.log()
    leaked = [fragment for fragment in key_fragments(certstore) if fragment in log]
    assert leaked == [], leaked[:3]
    for value in [*SECRETS.values(), TUNNEL_TOKEN]:
        assert value not in log


def key_fragments(certstore: Path):
    """PEM markers and 24-character pieces of every key body in CERTSTORE."""
    fragments = {"-----BEGIN", "PRIVATE KEY"}
    for path in certstore.glob("*/*-private.pem.key"):
        body = "".join(line for line in path.read_text().splitlines()
                       if not line.startswith("-----"))
        fragments.update(body[i:i + 24] for i in range(0, len(body) - 24, 12))
    return fragments
