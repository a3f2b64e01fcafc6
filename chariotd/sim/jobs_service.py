"""Jobs for every thing, kept in the store: the device API (jobs.handle), the cloud side
(create, list, describe, cancel), the timers, and injected faults for tests.

SimService calls these under its lock and publishes what they return; nothing here
touches MQTT. Each call reads the thing's executions from the store and writes them back
when they changed, so a restart of the simulator finds them as the cloud would.
"""

from __future__ import annotations

import collections
import uuid
from typing import Deque, Dict, List, Optional, Tuple

from chariotd.sim import jobs
from chariotd.sim.jobs import (Execution, Executions, JobsError, JobsOptions, Response,
                               rejection, token_of)
from chariotd.sim.log import log
from chariotd.sim.store import Store
from chariotd.sim.topics import THING_NAME, JobsRequest

# Faults a test may inject: the service answers the thing's next requests with them.
INJECTABLE = (jobs.REQUEST_THROTTLED, jobs.INTERNAL_ERROR)


class JobsService:
    def __init__(self, store: Store, options: JobsOptions = JobsOptions()):
        self.store = store
        self.options = options
        self.faults: Dict[str, Deque[str]] = {}
        # thing -> its earliest timer, so the ticker reads no file until one is due
        self.deadlines: Dict[str, int] = {}
        for thing in store.job_things():
            self._track(thing, store.load_jobs(thing))

    def _track(self, thing: str, executions: Executions) -> None:
        deadline = jobs.next_deadline(executions)
        if deadline is None:
            self.deadlines.pop(thing, None)
        else:
            self.deadlines[thing] = deadline

    def _save(self, thing: str, old: Executions, new: Executions) -> None:
        if new != old:
            self.store.save_jobs(thing, new)
            self._track(thing, new)

    # -- the device side

    def request(self, request: JobsRequest, payload: bytes, now: int) -> List[Response]:
        faults = self.faults.get(request.thing)
        if faults:
            code = faults.popleft()
            log(f"jobs: injected {code} for {request.topic}")
            return [rejection(request, JobsError(code, "Injected by the simulator"),
                              token_of(payload), now)]
        old = self.store.load_jobs(request.thing)
        new, responses = jobs.handle(old, request, payload, now, self.options)
        self._save(request.thing, old, new)
        topic, doc = responses[0]
        if topic.endswith("/rejected"):
            log(f"jobs: rejected {request.topic}: {doc['code']} {doc['message']}")
        return responses

    def inject(self, thing: str, code: str, count: int = 1) -> None:
        """Answer THING's next COUNT Jobs requests with CODE (RequestThrottled, InternalError)."""
        if code not in INJECTABLE:
            raise ValueError(f"not an injectable Jobs error: {code!r}")
        self.faults.setdefault(thing, collections.deque()).extend([code] * count)

    def expire(self, now: int) -> List[Response]:
        """Time out the executions whose timers ran out; the events to publish."""
        responses: List[Response] = []
        for thing in [t for t, deadline in self.deadlines.items() if deadline <= now]:
            old = self.store.load_jobs(thing)
            new, events = jobs.expire(old, thing, now, self.options)
            self._save(thing, old, new)
            if new == old:
                self.deadlines.pop(thing, None)
            for execution in new:
                if execution.status == jobs.TIMED_OUT and execution.last_updated_at == now:
                    log(f"jobs: {thing}'s execution of {execution.job_id} timed out")
            responses += events
        return responses

    # -- the cloud side

    def create(self, thing: str, document, job_id: Optional[str] = None,
               in_progress_minutes: Optional[int] = None,
               now: int = 0) -> Tuple[dict, List[Response]]:
        if not isinstance(thing, str) or not THING_NAME.match(thing):
            raise JobsError(jobs.INVALID_REQUEST, f"not a valid thing name: {thing!r}")
        job_id = job_id if job_id is not None else f"sim-{uuid.uuid4().hex[:12]}"
        if not isinstance(job_id, str):
            raise JobsError(jobs.INVALID_REQUEST, "a job ID is a string")
        if in_progress_minutes is not None and (not isinstance(in_progress_minutes, int)
                                                or isinstance(in_progress_minutes, bool)):
            raise JobsError(jobs.INVALID_REQUEST, "the in-progress timeout is an integer")
        if self._owner(job_id) is not None:
            raise JobsError(jobs.RESOURCE_ALREADY_EXISTS, f"job {job_id} already exists")
        old = self.store.load_jobs(thing)
        new, events = jobs.create(old, thing, job_id, document, now, in_progress_minutes,
                                  self.options)
        self._save(thing, old, new)
        log(f"jobs: created {job_id} for {thing}")
        return describe_record(thing, new[-1], now), events

    def _owner(self, job_id: str) -> Optional[str]:
        for thing in self.store.job_things():
            if any(e.job_id == job_id for e in self.store.load_jobs(thing)):
                return thing
        return None

    def list(self, thing: str, now: int) -> List[dict]:
        """THING's executions, every status, in creation order (no documents)."""
        return [_listed(thing, e, now) for e in self.store.load_jobs(thing)]

    def describe(self, thing: str, job_id: str, now: int) -> dict:
        for execution in reversed(self.store.load_jobs(thing)):
            if execution.job_id == job_id:
                return describe_record(thing, execution, now)
        raise JobsError(jobs.RESOURCE_NOT_FOUND,
                        f"no execution of job {job_id} on thing {thing}")

    def cancel(self, job_id: str, force: bool, now: int) -> Tuple[dict, List[Response]]:
        thing = self._owner(job_id)
        if thing is None:
            raise JobsError(jobs.RESOURCE_NOT_FOUND, f"no job {job_id}")
        old = self.store.load_jobs(thing)
        new, events, execution = jobs.cancel(old, thing, job_id, force, now, self.options)
        self._save(thing, old, new)
        log(f"jobs: cancel {job_id}{' (force)' if force else ''}: {thing}'s execution is "
            f"{execution.status}")
        return {"jobId": job_id, "force": force,
                "executions": [{"thingName": thing, "status": execution.status}]}, events

    def control(self, op: str, doc: dict, now: int) -> Tuple[dict, List[Response]]:
        """A cloud-side request from the CLI ($iotsim/jobs/OP): the answer and the events."""
        if op == "create":
            return self.create(doc.get("thingName"), doc.get("document"), doc.get("jobId"),
                               doc.get("inProgressTimeoutInMinutes"), now)
        if op == "list":
            return {"executions": self.list(_thing(doc), now)}, []
        if op == "describe":
            return self.describe(_thing(doc), str(doc.get("jobId")), now), []
        if op == "cancel":
            return self.cancel(str(doc.get("jobId")), doc.get("force") is True, now)
        raise JobsError(jobs.INVALID_REQUEST, f"no such jobs command: {op}")


def _thing(doc: dict) -> str:
    thing = doc.get("thingName")
    if not isinstance(thing, str) or not THING_NAME.match(thing):
        raise JobsError(jobs.INVALID_REQUEST, f"not a valid thing name: {thing!r}")
    return thing


def describe_record(thing: str, execution: Execution, now: int) -> dict:
    """What the cloud side sees of an execution: the JobExecution with thingName, the
    status whatever it is, and the deadline of a running timer."""
    doc = dict(execution.wire(now), thingName=thing)
    if execution.in_progress_minutes is not None:
        doc["inProgressTimeoutInMinutes"] = execution.in_progress_minutes
    return doc


def _listed(thing: str, execution: Execution, now: int) -> dict:
    doc = describe_record(thing, execution, now)
    del doc["jobDocument"]
    return doc
