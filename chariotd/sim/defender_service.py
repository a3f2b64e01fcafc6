"""Device Defender reports for every thing, kept in the store: the intake
(defender.handle) and the cloud side's view of the last reports. SimService calls these
under its lock and publishes what they return; replies on a .../cbor topic are CBOR.
"""

from __future__ import annotations

from typing import List, Tuple

from chariotd.sim import cbor, defender
from chariotd.sim.defender import DefenderOptions
from chariotd.sim.jobs import JobsError
from chariotd.sim.log import log
from chariotd.sim.store import Store
from chariotd.sim.topics import THING_NAME

Response = Tuple[str, object]


class DefenderService:
    def __init__(self, store: Store, options: DefenderOptions = DefenderOptions()):
        self.store = store
        self.options = options

    def report(self, thing: str, fmt: str, payload: bytes, now: int) -> List[Response]:
        old = self.store.load_defender(thing)
        new, responses = defender.handle(old, thing, fmt, payload, now, self.options)
        self.store.save_defender(thing, new)
        topic, doc = responses[0]
        if doc["status"] == "REJECTED":
            details = doc["statusDetails"]
            log(f"defender: rejected a report of {thing}: {details['ErrorCode']} "
                f"{details['ErrorMessage']}")
        if fmt == "cbor":
            return [(topic, cbor.dumps(doc))]
        return responses

    def reports(self, thing: str) -> dict:
        record = self.store.load_defender(thing)
        return {"thingName": thing, "reports": record.get("reports", []),
                "rejected": record.get("rejected", [])}

    def control(self, op: str, doc: dict, now: int):
        """$iotsim/defender/reports {thingName}: the last reports kept for the thing."""
        thing = doc.get("thingName")
        if op != "reports":
            raise JobsError("InvalidRequest", f"no such defender command: {op}")
        if not isinstance(thing, str) or not THING_NAME.match(thing):
            raise JobsError("InvalidRequest", f"not a valid thing name: {thing!r}")
        return self.reports(thing), []
