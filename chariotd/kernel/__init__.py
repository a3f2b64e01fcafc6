"""The kernel: what every chariotd process uses, whatever its role.

The poll loop (loop), the process start of a role (runtime), starting children the one
way (spawn, deathsig), touching paths another user may control (safe_open, fsutil,
pending), sd_notify (sdnotify), logging (log), memory release after bursts (memory),
records (record), MQTT topic rules (topics) and reconnect backoff (backoff).
Kernel modules import no role (tests/unit/test_import_rules.py)."""
