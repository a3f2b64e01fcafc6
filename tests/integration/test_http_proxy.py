"""--http-proxy: the real tree reaches the broker only through an HTTP CONNECT proxy
(tests/http_proxy.py) started by the test."""

from __future__ import annotations

import json
import pytest

from http_proxy import HttpProxy
from support import cmdline, wait_until, write_message

PASSWORD = "s3cret-pw"


@pytest.fixture
def proxy():
    server = HttpProxy(auth=("dev", PASSWORD))
    yield server
    server.stop()


def publish(mqtt_dir, name, topic, pad=0):
    write_message(mqtt_dir, name, json.dumps({"topic": topic,
                                              "payload": {"n": name, "pad": "x" * pad}}))


def test_messages_go_through_the_proxy_with_basic_auth(daemons, base_args, subscriber,
                                                       broker, proxy, tmp_path):
    mqtt_dir = tmp_path / "mqtt"
    daemon = daemons([*base_args, f"--messages={mqtt_dir}",
                      f"--http-proxy={proxy.url_with('dev', PASSWORD)}",
                      "--log-level=debug"], tmp_path)
    daemon.wait_connected()
    publish(mqtt_dir, "one", "t/proxied")
    subscriber.wait_for(1)
    assert proxy.connects == [broker.endpoint]
    assert proxy.authorizations[0].startswith("Basic ")
    assert PASSWORD not in daemon.log()
    for pid in [daemon.pid, *daemon.children()]:  # ps shows the process titles
        assert PASSWORD not in cmdline(pid)


def test_proxy_auth_failure_is_logged_and_not_charged(daemons, base_args, certstore,
                                                      proxy, tmp_path):
    daemon = daemons([*base_args, f"--http-proxy={proxy.url_with('dev', 'wrong')}"],
                     tmp_path, env={"CHARIOTD_BACKOFF_BASE": "0.05"})
    line = (rf"link: warning: cannot connect to 127\.0\.0\.1:\d+: proxy 127\.0\.0\.1:"
            rf"{proxy.port} refused CONNECT: 407 Proxy Authentication Required; "
            r"retrying in [\d.]+ s \(not counted against the certificate\)")
    daemon.wait_log(line)
    # Far more failures than the 6 that rotate `preferred` when charged.
    wait_until(lambda: len(proxy.connects) >= 8, 20, message="8 CONNECTs")
    assert daemon.process.poll() is None, daemon.log()
    assert "failures in a row" not in daemon.log()
    assert "preferred certificate is now" not in daemon.log()
    assert "wrong" not in daemon.log()


def test_refusal_names_the_status(daemons, base_args, proxy, tmp_path):
    proxy.auth = None
    proxy.refuse = (502, "Bad Gateway")
    daemon = daemons([*base_args, f"--http-proxy={proxy.url}"], tmp_path)
    daemon.wait_log(rf"proxy 127\.0\.0\.1:{proxy.port} refused CONNECT: 502 Bad Gateway")


def test_dropped_tunnel_reconnects(daemons, base_args, subscriber, proxy, tmp_path):
    proxy.auth = None
    proxy.drop_after = 6000  # past the TLS handshake and CONNACK, then cut
    mqtt_dir = tmp_path / "mqtt"
    daemon = daemons([*base_args, f"--messages={mqtt_dir}", f"--http-proxy={proxy.url}"],
                     tmp_path, env={"CHARIOTD_BACKOFF_BASE": "0.05"})
    daemon.wait_connected()
    for index in range(6):
        publish(mqtt_dir, f"m{index}", "t/drop", pad=2000)  # 12 KB: past the cut
    proxy.drop_after = None
    subscriber.wait_for(6, timeout=30)
    assert len(proxy.connects) >= 2, daemon.log()
    assert daemon.log().count("link: connected to") >= 2


def test_env_mode_takes_https_proxy_and_honours_no_proxy(daemons, base_args, subscriber,
                                                         broker, proxy, tmp_path):
    proxy.auth = None
    mqtt_dir = tmp_path / "mqtt"
    args = [*base_args, f"--messages={mqtt_dir}", "--http-proxy=env"]
    env = {"https_proxy": proxy.url, "no_proxy": "", "NO_PROXY": ""}
    daemon = daemons(args, tmp_path, env=env)
    daemon.wait_connected()
    publish(mqtt_dir, "via", "t/env")
    subscriber.wait_for(1)
    assert proxy.connects == [broker.endpoint]
    daemon.stop()

    host = broker.endpoint.rsplit(":", 1)[0]
    direct = daemons(args, tmp_path, env={**env, "no_proxy": f"example.com,{host}"})
    direct.wait_connected()
    assert proxy.connects == [broker.endpoint]  # no second CONNECT


@pytest.mark.parametrize("url, said", [
    ("https://127.0.0.1:3128", "the scheme must be http"),
    ("http://127.0.0.1", "no proxy port"),
    ("http://dev:hunter2@:3128", "no proxy host"),
    ("http://dev:hunter2@h:99999", "not a URL"),
])
def test_bad_proxy_url_exits_2_without_the_password(daemons, base_args, tmp_path, url, said):
    daemon = daemons([*base_args, f"--http-proxy={url}"], tmp_path)
    assert daemon.wait_exit() == 2
    log = daemon.log()
    assert said in log and "hunter2" not in log
    assert len(log.strip().splitlines()) == 1, log


def test_fleet_provisioning_goes_through_the_proxy(sim, daemons, proxy, tmp_path):
    from test_fleetprov import args, assert_provisioned, empty_certstore, write_config
    store = empty_certstore(tmp_path, sim)
    config = write_config(tmp_path, sim)
    daemon = daemons(args(sim, store, config, f"--http-proxy={proxy.url_with('dev', PASSWORD)}"),
                     tmp_path)
    assert daemon.wait_exit(20) == 0, daemon.log()
    assert_provisioned(store)
    assert proxy.connects == [sim.endpoint]  # the claim connection, through the proxy
    assert PASSWORD not in daemon.log()
