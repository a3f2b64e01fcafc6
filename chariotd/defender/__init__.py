"""Device Defender device-side metrics (IOT_CORE.md 8): what the device reports about itself.

- netstat: listening TCP/UDP ports, established connections, traffic counters (/proc)
"""
