"""StrictModes for service definitions through the real tree: a .py definition another
user could write is never run (root would run their code); the good ones still work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from support import wait_until

THING = "dev1"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

DEFINITION = textwrap.dedent("""\
    import pathlib
    pathlib.Path({marker!r}).write_text("ran as uid %d" % __import__("os").geteuid())
    key = {key!r}
    outfile = {outfile!r}
    outformat = "JSON"
    notifycmd = "true"
    """)


@pytest.fixture
def shared_base():
    """A world-traversable directory (as /etc is), so another user can reach files in it."""
    base = Path(tempfile.mkdtemp(prefix="chariotd-defs-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_world_writable_py_definition_is_skipped_and_the_good_one_works(
        sim, daemons, tmp_path, shared_base):
    svcs, out = shared_base / "svcs", shared_base / "out"
    svcs.mkdir(mode=0o755)
    out.mkdir()
    for key in ("good", "bad"):
        (svcs / f"{key}.py").write_text(DEFINITION.format(
            marker=str(out / f"{key}.ran"), key=key, outfile=str(out / key)))
    # The attack: bad.py is world-writable, so nobody puts their own code in it.
    os.chmod(svcs / "bad.py", 0o666)
    attack = DEFINITION.format(marker=str(out / "evil.ran"), key="bad", outfile=str(out / "bad"))
    subprocess.run([*NOBODY, "sh", "-c", f"cat > {svcs / 'bad.py'}"], input=attack.encode(),
                   check=True, timeout=10)
    assert (svcs / "bad.py").read_text() == attack

    daemon = daemons([f"--clientid={THING}", f"--cacert={sim.cafile}",
                      f"--certstore={sim.device(THING)}", f"--services={THING}:{svcs}"],
                     tmp_path)
    daemon.wait_log(r"shadow (fetched|created)", timeout=20)
    skipped = [line for line in daemon.log().splitlines() if "bad.py" in line]
    assert skipped == [
        f"applier: error: service definition {svcs / 'bad.py'} skipped: not trusted: the file "
        "is owned by uid 0 with mode 0666; it must be owned by root and not writable by group "
        "or others (a definition names a command run as root)"], daemon.log()
    assert not (out / "evil.ran").exists() and not (out / "bad.ran").exists()
    assert (out / "good.ran").read_text() == "ran as uid 0"
    assert f"{THING}: 1 services from {svcs}" in daemon.log()

    sim.set_desired(THING, None, {"good": {"n": 1}, "bad": {"n": 2}})
    wait_until(lambda: (out / "good").exists()
               and json.loads((out / "good").read_text()) == {"n": 1},
               message=lambda: daemon.log())
    wait_until(lambda: sim.get_shadow(THING)["state"].get("reported", {}).get("good")
               == {"n": 1}, message=lambda: json.dumps(sim.get_shadow(THING)))
    assert not (out / "bad").exists()
    assert "bad" not in sim.get_shadow(THING)["state"].get("reported", {})
