import json

from support import write_message


def test_round_trip(daemons, base_args, subscriber, tmp_path):
    messages = tmp_path / "mqtt"
    daemon = daemons([*base_args, f"--messages={messages}"], tmp_path)
    daemon.wait_connected()
    write_message(messages, "a", json.dumps({"topic": "t/1", "payload": {"k": "v"}}))
    got = subscriber.wait_for(1)
    assert got[0].payload == b'{"k":"v"}'


