"""chariotd-sim: the command line. Each subcommand parses its arguments and calls one
function; `up` runs the simulator in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from chariotd import __version__
from chariotd.sim.cloud import CloudClient, CloudError
from chariotd.sim.defender import DefenderOptions
from chariotd.sim.shadow_service import ShadowOptions
from chariotd.sim.simulator import (DEFAULT_PORT, Paths, Simulator, make_device, prepare,
                                    recorded_port, tunnel_notification)
from chariotd.sim.templates import DEFAULT_TEMPLATE
from chariotd.sim.topics import split_thing_shadow, tunnel_notify_topic

DIR_ENV = "CHARIOTD_SIM_DIR"


def _fail(message: str) -> int:
    print(f"chariotd-sim: {message}", file=sys.stderr)
    return 1


def _json_arg(text: str):
    try:
        return json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None


def _thing_shadow(text: str):
    try:
        return split_thing_shadow(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _demo(paths: Paths, port: int) -> List[str]:
    """Make the files the printed example commands use; return those commands."""
    make_device(paths.root, "demo", port)
    demo = paths.root / "demo"
    for name in ("updates", "messages", "fleetprov-certs"):
        for sub in ("tmp", "new", "failed"):
            (demo / name / sub).mkdir(parents=True, exist_ok=True)
    endpoint = demo / "fleetprov-certs" / "endpoint.txt"
    endpoint.write_text((paths.claimstore / "endpoint.txt").read_text())
    fleetprov = demo / "fleetprov.json"
    fleetprov.write_text(json.dumps({
        "claimstore": str(paths.claimstore), "template": DEFAULT_TEMPLATE,
        "parameters": {"SerialNumber": "0001"}}, indent=2) + "\n")
    return [
        f"chariotd --clientid=demo --cacert={paths.cafile} "
        f"--certstore={paths.device('demo')} --updates=demo:{demo / 'updates'} "
        f"--messages={demo / 'messages'}",
        f"chariotd --clientid=sim-0001 --cacert={paths.cafile} "
        f"--certstore={demo / 'fleetprov-certs'} --fleetprov={fleetprov}",
    ]


def cmd_up(args) -> int:
    port = args.port if args.port is not None else recorded_port(args.dir)
    options = ShadowOptions(max_depth=args.max_depth,
                            delta_on_change_only=args.delta_on_change_only)
    # Signals and the broker's death both write to a pipe the main thread waits on
    # (an Event set from a signal handler can deadlock against its own wait()).
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    sim = Simulator(args.dir, port=port, options=options, open_topics=not args.strict_topics,
                    defender_options=DefenderOptions(min_interval=args.defender_min_interval))
    try:
        sim.start()
    except (RuntimeError, OSError) as error:
        return _fail(str(error))
    try:
        broker_process = sim.broker.process
        threading.Thread(target=lambda: (broker_process.wait(), os.write(wake_write, b"x")),
                         daemon=True).start()
        paths = sim.paths
        commands = _demo(paths, sim.port)
        print(f"chariotd-sim: IoT Core on {sim.endpoint} (state in {paths.root})\n"
              f"  --cacert        {paths.cafile}\n"
              f"  claim certstore {paths.claimstore}\n"
              f"  templates       {paths.root / 'templates.json'}\n"
              f"Try a device with its own certificate (`chariotd-sim device THING` makes more):\n"
              f"  {commands[0]}\n"
              f"  chariotd-sim desired demo '{{\"demo\":{{\"led\":\"red\"}}}}' --dir {paths.root}\n"
              f"Or fleet provisioning with the claim certificate:\n"
              f"  {commands[1]}\n"
              f"Ctrl-C stops the simulator.", flush=True)
        os.read(wake_read, 1)
        if not sim.broker.running():
            return _fail(f"mosquitto exited; see {sim.broker.log_path}")
        return 0
    finally:
        sim.stop()


def cmd_device(args) -> int:
    if not (args.dir / "ca.crt").exists():
        prepare(args.dir, recorded_port(args.dir))
    print(make_device(args.dir, args.thing))
    return 0


def _shadow_call(args, op: str, doc=None) -> int:
    thing, shadow = args.target
    with CloudClient(args.dir, timeout=args.timeout) as cloud:
        accepted, answer = cloud.shadow(thing, shadow, op, doc)
    answer.pop("clientToken", None)
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0 if accepted else 1


def cmd_desired(args) -> int:
    return _shadow_call(args, "update", {"state": {"desired": args.state}})


def cmd_reported(args) -> int:
    return _shadow_call(args, "update", {"state": {"reported": args.state}})


def cmd_get(args) -> int:
    return _shadow_call(args, "get")


def cmd_delete(args) -> int:
    return _shadow_call(args, "delete")


def cmd_watch(args) -> int:
    seen = [0]

    def show(message) -> bool:
        payload = message.payload.decode("utf-8", errors="replace")
        print(f"{message.topic} {payload}", flush=True)
        seen[0] += 1
        return not (args.count and seen[0] >= args.count)

    def interrupt(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with CloudClient(args.dir) as cloud:
        cloud.subscribe(args.filters)
        print(f"chariotd-sim: watching {' '.join(args.filters)}", file=sys.stderr, flush=True)
        try:
            cloud.watch(show, timeout=args.timeout)
        except KeyboardInterrupt:
            pass
    return 0


def cmd_publish(args) -> int:
    with CloudClient(args.dir) as cloud:
        cloud.publish(args.topic, args.payload.encode(), qos=args.qos, retain=args.retain)
    return 0


def cmd_tunnel(args) -> int:
    services = [s for s in args.services.split(",") if s]
    doc = tunnel_notification(args.token, args.region, services)
    with CloudClient(args.dir) as cloud:
        cloud.publish(tunnel_notify_topic(args.thing), json.dumps(doc).encode())
    print(json.dumps(doc))
    return 0


def _command_call(args, service: str, op: str, doc: dict) -> int:
    """Send a cloud-side command; print its answer as JSON (exit 0) or the refusal (exit 1)."""
    with CloudClient(args.dir, timeout=args.timeout) as cloud:
        accepted, answer = cloud.command(service, op, doc)
    answer.pop("clientToken", None)
    if not accepted:
        return _fail(f"{op} refused: {answer.get('code')}: {answer.get('message')}")
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0


MAX_DOCUMENT_FILE = 1 << 20


def cmd_job_create(args) -> int:
    try:
        with open(args.document, "rb") as source:
            text = source.read(MAX_DOCUMENT_FILE + 1)
        if len(text) > MAX_DOCUMENT_FILE:
            return _fail(f"{args.document}: larger than {MAX_DOCUMENT_FILE} bytes")
        document = json.loads(text)
    except (OSError, ValueError) as error:
        return _fail(f"{args.document}: not a readable JSON job document ({error})")
    doc = {"thingName": args.thing, "document": document}
    if args.job_id is not None:
        doc["jobId"] = args.job_id
    if args.in_progress_timeout is not None:
        doc["inProgressTimeoutInMinutes"] = args.in_progress_timeout
    return _command_call(args, "jobs", "create", doc)


def cmd_job_list(args) -> int:
    return _command_call(args, "jobs", "list", {"thingName": args.thing})


def cmd_job_describe(args) -> int:
    return _command_call(args, "jobs", "describe", {"thingName": args.thing,
                                                    "jobId": args.job_id})


def cmd_job_cancel(args) -> int:
    return _command_call(args, "jobs", "cancel", {"jobId": args.job_id,
                                                  "force": args.force})


def cmd_defender(args) -> int:
    return _command_call(args, "defender", "reports", {"thingName": args.thing})


def _job_parser(sub, common) -> None:
    job = sub.add_parser("job", help="AWS IoT Jobs as the cloud: create, list, describe, "
                                     "cancel")
    ops = job.add_subparsers(dest="job_command", required=True, metavar="OP")
    timeout = argparse.ArgumentParser(add_help=False)
    timeout.add_argument("--timeout", type=float, default=10.0,
                         help="seconds to wait for the simulator's answer")

    create = ops.add_parser("create", parents=[common, timeout],
                            help="queue a job for THING; print its execution")
    create.add_argument("thing")
    create.add_argument("document", metavar="DOCUMENT-FILE", help="the job document (JSON)")
    create.add_argument("--job-id", help="default: sim-<12 hex digits>")
    create.add_argument("--in-progress-timeout", type=int, metavar="MIN",
                        help="minutes an execution may stay IN_PROGRESS (1-10080)")
    create.set_defaults(run=cmd_job_create)

    listing = ops.add_parser("list", parents=[common, timeout],
                             help="THING's executions, every status")
    listing.add_argument("thing")
    listing.set_defaults(run=cmd_job_list)

    describe = ops.add_parser("describe", parents=[common, timeout],
                              help="one execution, with its document")
    describe.add_argument("thing")
    describe.add_argument("job_id", metavar="JOB-ID")
    describe.set_defaults(run=cmd_job_describe)

    cancel = ops.add_parser("cancel", parents=[common, timeout],
                            help="cancel a job: QUEUED executions, IN_PROGRESS ones with "
                                 "--force")
    cancel.add_argument("job_id", metavar="JOB-ID")
    cancel.add_argument("--force", action="store_true")
    cancel.set_defaults(run=cmd_job_cancel)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="chariotd-sim",
        description="A local stand-in for AWS IoT Core: Mosquitto with TLS and client "
                    "certificates, the Device Shadow service, fleet provisioning, Jobs "
                    "and Device Defender.")
    top.add_argument("--version", action="version", version=f"chariotd-sim {__version__}")
    default_dir = os.environ.get(DIR_ENV)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=Path(default_dir) if default_dir else None,
                        required=default_dir is None,
                        help=f"the simulator's state directory (default ${DIR_ENV})")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", parents=[common], help="run broker and service in the foreground")
    up.add_argument("--port", type=int, default=None,
                    help=f"TLS port on 127.0.0.1 (default: as recorded in DIR, else "
                         f"{DEFAULT_PORT}; 0 picks a free one)")
    up.add_argument("--max-depth", type=int, default=6,
                    help="shadow nesting depth limit (AWS's error text says 6)")
    up.add_argument("--delta-on-change-only", action="store_true",
                    help="publish update/delta only when the delta changed")
    up.add_argument("--defender-min-interval", type=int, default=300, metavar="SECONDS",
                    help="Device Defender: reject a thing's report sooner than this after "
                         "its last accepted one (AWS: 300)")
    up.add_argument("--strict-topics", action="store_true",
                    help="devices may use only their $aws topics, no ordinary ones")
    up.set_defaults(run=cmd_up)

    device = sub.add_parser("device", parents=[common],
                            help="make (or reuse) a certstore for THING; print its path")
    device.add_argument("thing")
    device.set_defaults(run=cmd_device)

    for name, run, text in (("desired", cmd_desired, "set desired state (merged as an update)"),
                            ("reported", cmd_reported, "set reported state, as a device would")):
        command = sub.add_parser(name, parents=[common], help=text)
        command.add_argument("target", metavar="THING[/SHADOW]", type=_thing_shadow)
        command.add_argument("state", metavar="JSON", type=_json_arg)
        command.add_argument("--timeout", type=float, default=10.0)
        command.set_defaults(run=run)
    for name, run, text in (("get", cmd_get, "print a shadow"),
                            ("delete", cmd_delete, "delete a shadow")):
        command = sub.add_parser(name, parents=[common], help=text)
        command.add_argument("target", metavar="THING[/SHADOW]", type=_thing_shadow)
        command.add_argument("--timeout", type=float, default=10.0)
        command.set_defaults(run=run)

    watch = sub.add_parser("watch", parents=[common], help="print messages on topic filters")
    watch.add_argument("filters", nargs="+", metavar="FILTER")
    watch.add_argument("--count", type=int, default=0, help="exit after this many messages")
    watch.add_argument("--timeout", type=float, default=None,
                       help="exit after this many seconds without a message")
    watch.set_defaults(run=cmd_watch)

    publish = sub.add_parser("publish", parents=[common], help="publish one message")
    publish.add_argument("topic")
    publish.add_argument("payload")
    publish.add_argument("--qos", type=int, choices=(0, 1), default=1)
    publish.add_argument("--retain", action="store_true")
    publish.set_defaults(run=cmd_publish)

    tunnel = sub.add_parser("tunnel", parents=[common],
                            help="send a secure-tunneling notification to THING")
    tunnel.add_argument("thing")
    tunnel.add_argument("--services", default="SSH", help="comma-separated (default SSH)")
    tunnel.add_argument("--region", default="us-east-1")
    tunnel.add_argument("--token", default="sim-destination-access-token",
                        help="the destination client access token")
    tunnel.set_defaults(run=cmd_tunnel)

    _job_parser(sub, common)

    defender = sub.add_parser("defender", parents=[common],
                              help="print THING's last Device Defender reports (JSON)")
    defender.add_argument("thing")
    defender.add_argument("--timeout", type=float, default=10.0)
    defender.set_defaults(run=cmd_defender)
    return top


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except CloudError as error:
        return _fail(str(error))


if __name__ == "__main__":
    sys.exit(main())
