"""The states of one connection to the broker and which state may follow which
(kernel/mqtt/connection.py checks every transition against these tables). Imports
nothing: a test, a log reader or a role names the states without the plumbing.

    IDLE         nothing under way (provisioning between sessions)
    WAITING      the backoff timer runs; an attempt follows
    CONNECTING   CONNECT sent, the CONNACK owed
    SUBSCRIBING  CONNACK in, a SUBACK owed
    UP           the link's connection works
    CREATING     provisioning: CreateKeysAndCertificate (or FromCsr) sent, its answer owed
    REGISTERING  provisioning: RegisterThing sent, its answer owed
    FINISHING    provisioning: certificate being stored, outfile, notify command
"""

IDLE = "idle"
WAITING = "waiting"
CONNECTING = "connecting"
SUBSCRIBING = "subscribing"
UP = "up"
CREATING = "creating"
REGISTERING = "registering"
FINISHING = "finishing"

# The link's connection (broker_link/main.py). An attempt may fail before its CONNECT
# is sent (no usable certificate, a CA problem): WAITING -> WAITING.
LINK = {
    WAITING: (WAITING, CONNECTING),
    CONNECTING: (SUBSCRIBING, UP, WAITING),
    SUBSCRIBING: (UP, WAITING),
    UP: (WAITING,),
}

# One fleet provisioning session (provisioning/claim.py): any failure goes to WAITING,
# or to IDLE when the session gives up.
PROVISIONING = {
    IDLE: (CONNECTING, WAITING),
    WAITING: (CONNECTING, WAITING, IDLE),
    CONNECTING: (SUBSCRIBING, WAITING, IDLE),
    SUBSCRIBING: (CREATING, WAITING, IDLE),
    CREATING: (REGISTERING, WAITING, IDLE),
    REGISTERING: (FINISHING, WAITING, IDLE),
    FINISHING: (IDLE, WAITING),
}
