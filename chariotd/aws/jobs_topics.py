"""AWS IoT Jobs topics of a thing (IOT_CORE.md §7), pure: what the link subscribes to
for the jobs role and which arriving topics it hands over; the jobs role's wire module
builds its requests and reads its replies on the same names.

The subscriptions are notify-next and the replies of the three requests the role makes
(start-next, update, describe): on a plain broker a reply reaches only subscribers.
"""

from __future__ import annotations

from typing import Optional, Tuple

START_NEXT = "start-next"
UPDATE = "update"
DESCRIBE = "get"
NOTIFY_NEXT = "notify-next"
THINGS = "$aws/things/"


def prefix(thing: str) -> str:
    return f"{THINGS}{thing}/jobs"


def subscriptions(thing: str) -> Tuple[str, ...]:
    p = prefix(thing)
    return (f"{p}/{NOTIFY_NEXT}", f"{p}/{START_NEXT}/accepted", f"{p}/{START_NEXT}/rejected",
            f"{p}/+/{UPDATE}/accepted", f"{p}/+/{UPDATE}/rejected",
            f"{p}/+/{DESCRIBE}/accepted", f"{p}/+/{DESCRIBE}/rejected")


def thing_of(topic: str) -> Optional[str]:
    """The thing whose jobs topic TOPIC is (`$aws/things/THING/jobs/...`), else None."""
    if not topic.startswith(THINGS):
        return None
    thing, _, rest = topic[len(THINGS):].partition("/")
    if not thing or not rest.startswith("jobs/"):
        return None
    return thing
