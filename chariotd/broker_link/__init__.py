"""The link process: the only one that touches the network.

main           the role's loop: mailbox, the paho socket, timers; publishes for the watchers
routes         which process an inbound message or shadow response goes to
shadow_topics  device shadow request and response topics (pure)
windows        per-sender windows of publishes awaiting their PUBACK (pure)

The MQTT connection pieces it shares with provisioning are in kernel/mqtt/ (session,
driver, deadlines); reconnect backoff is kernel/backoff.py. With --fleetprov, fleet
provisioning (chariotd/provisioning/) runs in this process, handed in by main.py.
"""
