"""Device Defender device-side metrics (IOT_CORE.md 8): what the device reports about itself.

- netstat: listening TCP/UDP ports, established connections, traffic counters (/proc)
- custom: custom metrics from a directory, one file per metric, typed as AWS wants
- report_id: report ids increasing across restarts (clock ms, never below last + 1, saved)
- schedule: when reports are due (first soon after connecting, then every interval)
- report: the report document, long or short names, trimmed to AWS's limits
- collect: one report from the machine now (tables, custom metrics, id, payload)
"""
