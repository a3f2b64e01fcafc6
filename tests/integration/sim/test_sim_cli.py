"""The chariotd-sim command: `up` in the foreground, `device`, and the cloud commands."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sim_clients import Device
from support import alive, children_of, wait_until

SIM = str(Path(sys.executable).parent / "chariotd-sim")


def run(*args, check=True, timeout=20):
    result = subprocess.run([SIM, *map(str, args)], capture_output=True, text=True,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr
    return result


class _Up:
    """What `devices` needs from a Simulator: cafile and port."""

    def __init__(self, directory: Path, port: int):
        self.cafile, self.port = directory / "ca.crt", port


@pytest.fixture
def up(tmp_path):
    directory = tmp_path / "sim"
    out = open(tmp_path / "up.out", "w+")
    process = subprocess.Popen([SIM, "up", "--dir", str(directory), "--port", "0"],
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    banner = wait_until(lambda: re.search(r"IoT Core on 127\.0\.0\.1:(\d+)",
                                          (tmp_path / "up.out").read_text()), 20,
                        message="the `up` banner")
    yield process, directory, int(banner.group(1)), tmp_path / "up.out"
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    out.close()


def test_up_cloud_commands_and_sigterm(up):
    process, directory, port, out = up
    mosquitto = children_of(process.pid)
    assert mosquitto, "up runs mosquitto as its child"
    banner = out.read_text()
    assert f"--cacert={directory}/ca.crt" in banner
    assert f"--certstore={directory}/devices/demo" in banner
    assert json.loads((directory / "sim.json").read_text())["port"] == port

    certstore = Path(run("device", "dev1", "--dir", directory).stdout.strip())
    assert certstore == directory / "devices" / "dev1"
    assert (certstore / "endpoint.txt").read_text().strip() == f"127.0.0.1:{port}"
    assert run("device", "dev1", "--dir", directory).stdout.strip() == str(certstore)

    dev = Device.from_certstore(_Up(directory, port), certstore, "dev1")
    try:
        dev.subscribe("$aws/things/dev1/shadow/update/delta", "$aws/things/dev1/tunnels/notify",
                      "hello/dev1")
        result = run("desired", "dev1", '{"svc": {"x": 1}}', "--dir", directory)
        assert json.loads(result.stdout)["version"] == 1
        assert dev.wait_json("$aws/things/dev1/shadow/update/delta")["state"] == {
            "svc": {"x": 1}}

        got = json.loads(run("get", "dev1", "--dir", directory).stdout)
        assert got["state"]["delta"] == {"svc": {"x": 1}}
        missing = run("get", "dev1/named", "--dir", directory, check=False)
        assert missing.returncode == 1
        assert json.loads(missing.stdout)["message"] == "No shadow exists with name: 'named'"

        run("tunnel", "dev1", "--services", "SSH,VNC", "--token", "T", "--dir", directory)
        assert dev.wait_json("$aws/things/dev1/tunnels/notify") == {
            "clientAccessToken": "T", "clientMode": "destination", "region": "us-east-1",
            "services": ["SSH", "VNC"]}

        run("publish", "hello/dev1", "hi", "--dir", directory)
        wait_until(lambda: dev.received("hello/dev1"))
        assert dev.received("hello/dev1")[0].payload == b"hi"

        watcher = subprocess.Popen([SIM, "watch", "$aws/things/dev1/shadow/#", "--count", "1",
                                    "--timeout", "10", "--dir", str(directory)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "watching" in watcher.stderr.readline()
        dev.publish("$aws/things/dev1/shadow/update", {"state": {"reported": {"svc": {"x": 1}}}})
        line = watcher.communicate(timeout=15)[0]
        assert line.startswith("$aws/things/dev1/shadow/")

        assert json.loads(run("delete", "dev1", "--dir", directory).stdout)["version"] == 2
    finally:
        dev.close()

    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert not any(alive(pid) for pid in mosquitto)


def test_cloud_command_without_a_running_simulator(tmp_path):
    result = run("get", "dev1", "--dir", tmp_path, check=False)
    assert result.returncode == 1
    assert "chariotd-sim:" in result.stderr and "Traceback" not in result.stderr


def test_device_before_up_uses_the_default_port(tmp_path):
    certstore = Path(run("device", "thing-1", "--dir", tmp_path).stdout.strip())
    assert (certstore / "endpoint.txt").read_text().strip() == "127.0.0.1:8883"
    assert (tmp_path / "ca.crt").exists()
    bad = run("device", "bad/name", "--dir", tmp_path, check=False)
    assert bad.returncode != 0


def test_up_exits_when_mosquitto_dies(up):
    process, directory, port, out = up
    (broker,) = children_of(process.pid)
    os.kill(broker, signal.SIGKILL)
    assert process.wait(10) == 1
    assert "mosquitto exited" in out.read_text()


def test_version_needs_no_command():
    result = run("--version")
    assert result.stdout.strip().startswith("chariotd-sim ")


def test_job_commands(up, tmp_path):
    process, directory, port, out = up
    certstore = Path(run("device", "dev1", "--dir", directory).stdout.strip())
    document = tmp_path / "reboot.json"
    document.write_text('{"operation": "reboot"}')
    dev = Device.from_certstore(_Up(directory, port), certstore, "dev1-jobs")
    try:
        dev.subscribe("$aws/things/dev1/jobs/notify", "$aws/things/dev1/jobs/notify-next",
                      "$aws/things/dev1/jobs/start-next/accepted")
        created = json.loads(run("job", "create", "dev1", document, "--job-id", "j1",
                                 "--in-progress-timeout", "30", "--dir", directory).stdout)
        assert (created["jobId"], created["status"], created["thingName"],
                created["jobDocument"]) == ("j1", "QUEUED", "dev1", {"operation": "reboot"})
        assert dev.wait_json("$aws/things/dev1/jobs/notify-next")["execution"]["jobId"] == "j1"
        generated = json.loads(run("job", "create", "dev1", document, "--dir",
                                   directory).stdout)["jobId"]
        assert re.fullmatch(r"sim-[0-9a-f]{12}", generated)

        again = run("job", "create", "dev1", document, "--job-id", "j1", "--dir", directory,
                    check=False)
        assert again.returncode == 1 and "ResourceAlreadyExists" in again.stderr
        document.write_text("[1, 2]")
        bad = run("job", "create", "dev1", document, "--dir", directory, check=False)
        assert bad.returncode == 1 and "must be a JSON object" in bad.stderr
        bad = run("job", "create", "dev1", tmp_path / "missing.json", "--dir", directory,
                  check=False)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr

        dev.publish("$aws/things/dev1/jobs/start-next", {"clientToken": "s"})
        started = dev.wait_json("$aws/things/dev1/jobs/start-next/accepted")["execution"]
        assert started["approximateSecondsBeforeTimedOut"] == 1800

        listed = json.loads(run("job", "list", "dev1", "--dir", directory).stdout)
        assert [(e["jobId"], e["status"]) for e in listed["executions"]] == [
            ("j1", "IN_PROGRESS"), (generated, "QUEUED")]
        described = json.loads(run("job", "describe", "dev1", "j1", "--dir", directory).stdout)
        assert (described["versionNumber"], described["inProgressTimeoutInMinutes"]) == (2, 30)

        kept = json.loads(run("job", "cancel", "j1", "--dir", directory).stdout)
        assert kept["executions"] == [{"thingName": "dev1", "status": "IN_PROGRESS"}]
        forced = json.loads(run("job", "cancel", "j1", "--force", "--dir", directory).stdout)
        assert forced["executions"] == [{"thingName": "dev1", "status": "CANCELED"}]
        assert dev.wait_json("$aws/things/dev1/jobs/notify-next", 2)["execution"]["jobId"] \
            == generated
        missing = run("job", "describe", "dev1", "nope", "--dir", directory, check=False)
        assert missing.returncode == 1 and "ResourceNotFound" in missing.stderr
    finally:
        dev.close()
