"""The link process: the only one that touches the network.

main     the role's loop: mailbox, the paho socket, timers; publishes for the watchers
session  one MQTT connection attempt: paho client set-up, TLS, last will
driver   drives a paho client from the role's poll loop (reads, writes, keep-alive)
backoff  reconnect delays: exponential backoff with full jitter; failure counts (pure)
deadlines  how long every wait on the broker may last (pure)
provisioning  fleet provisioning over a claim connection: first boot and reprovision
keys     the device key and CSR for provisioning by CSR; does a certificate fit a key
"""
