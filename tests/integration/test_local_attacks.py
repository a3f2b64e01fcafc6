"""Issue 12, findings 1, 2, 6 and 7 through the real tree: chariotd runs as root and an
unprivileged user (uid 65534, by `setpriv`) owns an outfile directory, an updates
directory or a subscribe-write FIFO, and plants a setuid bit, a symlink, a hard link or a
FIFO where chariotd expects a file (chariotd/kernel/safe_open.py is what stops each)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from support import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to act as another user")

NOBODY = 65534
SECRET = "s3cr3t-root-only-7c1"


def as_nobody(script: str) -> None:
    """Run SCRIPT with /bin/sh as uid/gid 65534 with no supplementary groups."""
    subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                    "/bin/sh", "-ec", script], check=True, timeout=10)


class Setting:
    """A base folder other users can traverse (as /etc is), holding the attacker's
    folders, a root-only folder with a secret, the services and the certstore."""

    def __init__(self, sim, base: Path):
        self.sim = sim
        self.base = base
        self.rootonly = base / "rootonly"
        self.rootonly.mkdir(mode=0o700)
        self.secret = self.rootonly / "secret"
        self.secret.write_text(json.dumps({"leak": SECRET}))
        self.secret.chmod(0o600)
        self.svcs = base / "svcs"
        self.svcs.mkdir()
        self.out = base / "out"  # root's
        self.out.mkdir()
        self.notified = base / "notified"
        self.certstore = sim.device("dev1")

    def attacker_dir(self, name: str, *subdirs: str) -> Path:
        path = self.base / name
        for directory in (path, *(path / sub for sub in subdirs)):
            directory.mkdir()
            os.chown(directory, NOBODY, NOBODY)
        return path

    def service(self, key: str, directory: Path) -> Path:
        self.svcs.joinpath(f"{key}.js").write_text(textwrap.dedent(f"""\
            module.exports = {{ key: '{key}', outfile: '{directory / key}',
                                outformat: 'JSON', informat: 'JSON',
                                notifycmd: 'echo {key} >> {self.notified}' }}
            """))
        return directory / key

    def start(self, daemons, *extra):
        daemon = daemons(["--clientid=dev1", f"--cacert={self.sim.cafile}",
                          f"--certstore={self.certstore}", f"--services=dev1:{self.svcs}",
                          *extra], self.base)
        daemon.wait_log(r"shadow (fetched|created)", timeout=20)
        return daemon

    def reported(self):
        shadow = self.sim.get_shadow("dev1") or {}
        return shadow.get("state", {}).get("reported", {})

    def notifications(self):
        try:
            return self.notified.read_text().split()
        except FileNotFoundError:
            return []


@pytest.fixture
def setting(sim):
    base = Path(tempfile.mkdtemp(prefix="chariotd-attack-"))
    os.chmod(base, 0o755)
    try:
        yield Setting(sim, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_finding1_a_setuid_bit_on_the_outfile_is_never_kept(daemons, setting):
    """The owner of the outfile's directory swaps in its own 4755 outfile; the next
    delta makes a root-owned file without the setuid bit."""
    attacker = setting.attacker_dir("attacker")
    outfile = setting.service("cfg", attacker)
    setting.start(daemons)
    setting.sim.set_desired("dev1", None, {"cfg": {"v": "1"}})
    wait_until(lambda: read_json(outfile) == {"v": "1"}, message="first write")
    as_nobody(f"rm -f {outfile}; printf '{{\"v\": \"1\"}}' > {outfile}; chmod 4755 {outfile}")
    assert os.lstat(outfile).st_mode & 0o7777 == 0o4755
    setting.sim.set_desired("dev1", None, {"cfg": {"v": "\u007fELF"}})
    wait_until(lambda: read_json(outfile) == {"v": "\u007fELF"}, message="second write")
    st = os.lstat(outfile)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755  # 07000 dropped


def test_finding2_subscribe_write_never_follows_a_swapped_link(daemons, setting):
    """The FIFO's owner swaps it for a symlink, then (as fs.protected_hardlinks=0 would
    let it) a hard link, to a root-only file: the file is never written or truncated.
    Its own regular file in their place is written: the role goes on serving."""
    attacker = setting.attacker_dir("attacker")
    target = attacker / "pipe"
    as_nobody(f"mkfifo {target}")
    daemon = setting.start(daemons, f"--subscribe-write=dev1/pipe:{target}")
    daemon.wait_log(r"subscribed to \d+ topic filters")
    as_nobody(f"rm {target}; ln -s {setting.secret} {target}")
    setting.sim.publish("dev1/pipe", b"overwritten-1")
    daemon.wait_log(r"cannot open .*/pipe: is a symbolic link, not a FIFO or a regular "
                    r"file; the message on dev1/pipe is dropped")
    os.unlink(target)
    os.link(setting.secret, target)  # as root: this machine has protected_hardlinks=1
    setting.sim.publish("dev1/pipe", b"overwritten-2")
    daemon.wait_log(r"cannot open .*/pipe: has 2 links")
    assert json.loads(setting.secret.read_text()) == {"leak": SECRET}
    as_nobody(f"rm {target}; printf 'old content' > {target}")
    setting.sim.publish("dev1/pipe", b"delivered")
    wait_until(lambda: target.read_bytes() == b"delivered", message=daemon.log)
    assert json.loads(setting.secret.read_text()) == {"leak": SECRET}


def test_finding6_a_hard_link_in_updates_new_goes_to_failed(daemons, setting):
    """A hard link to a root-only file moved into updates new/: it goes to failed/ with
    the reason, its content reaches neither the outfile nor the reported state; an
    ordinary update after it is applied."""
    updates = setting.attacker_dir("updates", "tmp", "new", "failed")
    outfile = setting.service("cfg", setting.out)
    daemon = setting.start(daemons, f"--updates=dev1:{updates}")
    # With fs.protected_hardlinks=0 (the kernel default without systemd) uid 65534 can
    # make this link itself; this machine has 1, so root makes it and the attacker moves
    # it into new/.
    os.link(setting.secret, updates / "tmp" / "cfg.1")
    as_nobody(f"mv {updates / 'tmp' / 'cfg.1'} {updates / 'new' / 'cfg.1'}")
    wait_until(lambda: (updates / "failed" / "cfg.1").exists(), message=daemon.log)
    daemon.wait_log(r"cfg\.1: cannot read: has 2 links; only a file with one link is used")
    as_nobody(f"printf '{{\"ok\": \"1\"}}' > {updates / 'tmp' / 'cfg.2'};"
              f" mv {updates / 'tmp' / 'cfg.2'} {updates / 'new' / 'cfg.2'}")
    wait_until(lambda: setting.reported().get("cfg") == {"ok": "1"}, message=daemon.log)
    assert read_json(outfile) == {"ok": "1"}
    assert SECRET not in json.dumps(setting.sim.get_shadow("dev1"))
    assert SECRET not in daemon.log()


def test_finding7_fifos_at_an_outfile_and_a_marker_never_hang_the_applier(daemons,
                                                                          setting):
    """FIFOs planted at one service's outfile and at another's notify marker: the
    applier logs the first, never waits on either, and keeps serving every service."""
    attacker = setting.attacker_dir("attacker")
    trap_outfile = setting.service("trap", attacker)
    marked = setting.service("marked", attacker)
    other = setting.service("other", setting.out)
    as_nobody(f"mkfifo {trap_outfile} {attacker / '.marked.notify-pending'}")
    setting.sim.set_desired("dev1", None, {"trap": {"v": "1"}, "marked": {"v": "1"},
                                           "other": {"v": "1"}})
    daemon = setting.start(daemons)
    children = sorted(daemon.children())
    daemon.wait_log(r"/attacker/trap: is a FIFO, not a regular file")
    wait_until(lambda: read_json(other) == {"v": "1"}, message=daemon.log)
    wait_until(lambda: read_json(marked) == {"v": "1"}, message=daemon.log)
    wait_until(lambda: {"marked", "other"} <= set(setting.notifications()),
               message=daemon.log)
    # The planted marker counted as one; it went when its notify command finished.
    wait_until(lambda: not os.path.lexists(attacker / ".marked.notify-pending"))
    setting.sim.set_desired("dev1", None, {"other": {"v": "2"}})
    wait_until(lambda: setting.reported().get("other") == {"v": "2"}, message=daemon.log)
    assert sorted(daemon.children()) == children  # no role was restarted
