"""The kernel: what every chariotd process uses, whatever its role. Imports no role.

loop       the one poll loop each process runs (zmq.Poller, timers, signal wake-up)
runtime    what every child process does first: title, signals, parent watch, mailbox
spawn      the one way to start a child: allowlisted environment, timeouts, a cap
deathsig   PR_SET_PDEATHSIG for roles and children
safe_open  the one way to open a path another user may control (no link, no block)
fsutil     crash-safe file writes (temp file, fsync, rename, directory fsync)
pending    markers of notify commands that must run to the end
sdnotify   systemd's sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING), parent only
log        one line per event on stderr, prefixed with the role
memory     give memory back after a burst of work
topics     MQTT topic checks (AWS limits, no wildcards)
backoff    waits between attempts: exponential backoff, full jitter; failure counts (pure)
extras     the optional parts (fleet provisioning, chariotd-sim) and the pip extra of each
trust      who may own a file chariotd runs or loads (root or its user, not group/other-writable)
mqtt/      the MQTT connection pieces of the link and provisioning (session, driver,
           deadlines, states and the connection state machine)
"""
