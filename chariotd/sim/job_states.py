"""The states of a job execution and who may move it where (IOT_CORE.md §7.4).

Plain names and one table per actor; ``enter`` is the only way a status changes."""

QUEUED = "QUEUED"
IN_PROGRESS = "IN_PROGRESS"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TIMED_OUT = "TIMED_OUT"
REJECTED = "REJECTED"
REMOVED = "REMOVED"
CANCELED = "CANCELED"

STATUSES = (QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, TIMED_OUT, REJECTED, REMOVED, CANCELED)
PENDING = (IN_PROGRESS, QUEUED)          # the order pending executions are listed in
TERMINAL = frozenset(STATUSES) - frozenset(PENDING)

# What a device may set with UpdateJobExecution (the others are the service's).
DEVICE_SETS = (IN_PROGRESS, SUCCEEDED, FAILED, REJECTED)

# status -> statuses it may go to. QUEUED -> SUCCEEDED|FAILED directly is not stated by
# AWS ([?]); the simulator allows it. Terminal statuses go nowhere.
DEVICE_MOVES = {
    QUEUED: frozenset({IN_PROGRESS, SUCCEEDED, FAILED, REJECTED}),
    IN_PROGRESS: frozenset({IN_PROGRESS, SUCCEEDED, FAILED, REJECTED}),
}
SERVICE_MOVES = {
    QUEUED: frozenset({CANCELED, REMOVED}),
    IN_PROGRESS: frozenset({CANCELED, REMOVED, TIMED_OUT}),
}


class TransitionRefused(Exception):
    """STATUS may not go to NEW for this actor."""


def enter(status: str, new: str, moves: dict) -> str:
    """NEW if MOVES allows STATUS -> NEW, else TransitionRefused."""
    if new not in moves.get(status, ()):
        raise TransitionRefused(f"{status} -> {new}")
    return new
