"""Log lines through the real tree: a file name with ESC and CR in an action directory
gives one log line with those characters escaped, not a forged line or a terminal
escape."""

from __future__ import annotations

from support import wait_until, write_message


def test_a_hostile_file_name_is_one_escaped_log_line(daemons, base_args, tmp_path):
    mqtt = tmp_path / "mqtt"
    daemon = daemons([*base_args, f"--messages={mqtt}"], tmp_path)
    daemon.wait_connected()
    name = "x\x1b[2J\x1b]0;owned\x07\rchariotd: error: forged\u2028line"
    write_message(mqtt, name, "not json")
    wait_until(lambda: (mqtt / "failed" / name).exists(), message=lambda: daemon.log())
    raw = daemon.log_path.read_bytes()
    assert b"\x1b" not in raw and b"\r" not in raw and b"\x07" not in raw
    assert "\u2028".encode() not in raw
    escaped = "x\\x1b[2J\\x1b]0;owned\\x07\\rchariotd: error: forged\\u2028line"
    lines = [line for line in raw.decode().splitlines() if "forged" in line]
    assert len(lines) == 1 and escaped in lines[0], raw.decode()
    assert lines[0].startswith("watch ") and lines[0].endswith("moved to failed/")
