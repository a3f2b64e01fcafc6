"""Messages between chariotd's processes.

messages  every message kind (one frozen dataclass per op), encode/decode, validation
mailbox   a role's PULL mailbox on ipc://RUNDIR/<role>, and PUSH sockets to the others
"""
