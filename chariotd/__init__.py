"""chariotd: userspace glue for AWS IoT Core.

main           entry point: parse, validate, build each role, hand them to the supervisor
cli            every flag, its default and help text; THING:DIR and DIR:VALUE parsing
               (imported by main.py only)
config         the configuration records every role reads (Config, ThingShadow, MessageDir)
supervisor     forks one process per role, waits, tears the tree down, exit statuses
__main__       python -m chariotd
certstore      certstore layout, the preferred symlink, rotation, adding certificates
kernel/        what every process uses: poll loop, runtime, spawn, safe file I/O, pending
               markers, sd_notify, logging, records, topics, backoff; kernel/mqtt/ the
               MQTT connection pieces of the link and provisioning
ipc/           mailboxes over ZeroMQ and the schema of every message between processes
broker_link/   the link role: the only process that touches the network
watchers/      the watcher roles: action directories (tmp/ new/ failed/) and their handlers
services/      the applier role: service definitions, shadow sync, outfiles, notify commands
provisioning/  fleet provisioning by claim (runs in the link process, handed in by main)
shadow/        pure shadow document logic the daemon uses
formats/       pure outfile formats and the one strict JSON loader
aws/           pure AWS knowledge two roles share (secure tunneling requests)
sim/           chariotd-sim, a local stand-in for AWS IoT Core; imports no role

A role never imports another role; tests/unit/test_import_rules.py holds the rules.
"""

__version__ = "0.1.0"
