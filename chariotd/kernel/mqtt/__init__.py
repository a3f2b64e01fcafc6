"""The MQTT pieces the link and provisioning both use, around paho-mqtt.

session    one MQTT connection attempt: paho client set-up, TLS, last will, the CA check
driver     drives a paho client from the role's poll loop (reads, writes, keep-alive)
deadlines  how long every wait on the broker may last (pure)
"""
