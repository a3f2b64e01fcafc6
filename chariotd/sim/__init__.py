"""chariotd-sim: a local stand-in for AWS IoT Core (see ../shared/IOT_CORE.md).

pki        the simulator's CA; server, device and claim certificates; certstore layout
mosquitto  a real Mosquitto broker configured like IoT Core (TLS, client certs, ACLs)
"""
