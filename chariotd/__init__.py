"""chariotd: userspace glue for AWS IoT Core.

main         command entry point: parse, validate, hand to the supervisor
cli          every flag, its default and help text; THING:DIR and DIR:VALUE parsing
supervisor   forks one process per role, waits, tears the tree down, exit statuses
extras       the optional parts (fleet provisioning, chariotd-sim) and their extras
sdnotify     systemd's sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING), parent only
runtime      what every child process does first: title, signals, parent watch, loop
loop         the one poll loop each process runs (zmq.Poller, timers, signal wake-up)
log          one line per event on stderr, prefixed with the role
certstore    certstore layout, the preferred symlink, rotation, adding certificates
fleetprov    the --fleetprov file, provisioning payloads and outfile (pure)
topics       MQTT topic checks (AWS limits, no wildcards)
fsutil       crash-safe file writes (temp file, fsync, rename, directory fsync)
safe_open    the one way to open a path another user may control (no link, no block)
ipc/         mailboxes over ZeroMQ and the schema of every message between processes
broker_link/ the link process: the only one that touches the network
watchers/    action directories (tmp/ new/ failed/) and their handlers
sim/         chariotd-sim, a local stand-in for AWS IoT Core
"""

__version__ = "0.1.0"
