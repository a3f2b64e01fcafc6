"""Carrying out one thing's jobs machine in the role's loop: the record and work
directory (state), handler processes (runner), MQTT publishes (a callback: the role
sends them to the link), and the machine's wake-ups (one loop timer).

Before a handler starts, its record must be on disk: if it cannot be written, the step
fails without running ("cannot record the execution: ..."), never runs unrecorded. A
step that cannot start (untrusted or missing handler, runCommand refused, unknown
runAsUser, a refused argument) is a failed step with that reason.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, List, Optional

from chariotd.jobs import machine as m
from chariotd.jobs import wire
from chariotd.jobs.details import IN_PROGRESS, StepResult
from chariotd.jobs.runner import (STOP_GRACE, HandlerRun, StepRefused, account, step_argv,
                                  step_environment)
from chariotd.jobs.state import ExecutionState, Record, handler_identity
from chariotd.kernel.loop import Loop
from chariotd.kernel.spawn import CannotStart

log = logging.getLogger(__name__)


class ThingWorker:
    def __init__(self, loop: Loop, thing: str, handler_dir: str, state: ExecutionState,
                 jobs: m.ThingJobs, publish: Callable[[str, bytes], None],
                 allow_commands: bool = False, grace: float = STOP_GRACE):
        self.loop = loop
        self.thing = thing
        self.handler_dir = handler_dir
        self.state = state
        self.jobs = jobs
        self.publish = publish
        self.allow_commands = allow_commands
        self.grace = grace
        self.handler: Optional[HandlerRun] = None
        self.timer = None
        self.last_notes: List[str] = []
        self.record: Optional[Record] = None  # as last written

    # -- events in --------------------------------------------------------------------------
    def start(self) -> None:
        """At the role's start, before the link is up: the outcome left by a crash."""
        record = self.state.recover()
        if record is not None:
            log.info("%s: job %s: found from before the restart: %s", self.thing,
                     record.job_id, record.outcome.status)
            self.carry(self.jobs.recovered(record, self.loop.clock()))

    def link_up(self) -> None:
        self.carry(self.jobs.link_up(self.loop.clock()))

    def link_down(self) -> None:
        self.carry(self.jobs.link_down())

    def publish_failed(self) -> None:
        self.carry(self.jobs.publish_failed(self.loop.clock()))

    def message(self, topic: str, payload: bytes) -> bool:
        """A message on one of wire.subscriptions(thing); False when not ours."""
        try:
            event = wire.parse(self.thing, topic, payload)
        except wire.BadMessage as error:
            log.warning("%s: ignored a jobs message: %s", self.thing, error)
            return True
        if event is None:
            return False
        self.carry(self.jobs.message(event, self.loop.clock()))
        return True

    # -- actions out ------------------------------------------------------------------------
    def carry(self, actions) -> None:
        for index, action in enumerate(actions):
            if isinstance(action, m.Publish):
                self.publish(action.topic, action.payload)
            elif isinstance(action, m.WriteRecord):
                self.record = action.record
                try:
                    self.state.write(action.record)
                except OSError as error:
                    reason = f"cannot record the execution: {error.strerror or error}"
                    log.error("%s: job %s: %s", self.thing, action.record.job_id, reason)
                    if action.record.outcome is None:  # a step was to start: it must not
                        rest = actions[index + 1:]
                        self._not_started(reason)
                        self.carry([a for a in rest if not isinstance(a, m.StartStep)])
                        return
            elif isinstance(action, m.RemoveRecord):
                self.state.remove()
            elif isinstance(action, m.StartStep):
                self._start_step(action)
            elif isinstance(action, m.StopHandler):
                if self.handler is not None:
                    self.handler.stop()
            elif isinstance(action, m.Wake):
                self._wake(action.at)

    def _wake(self, at: float) -> None:
        if self.timer is not None and not self.timer.cancelled and self.timer.when <= at:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(at - self.loop.clock(), self._tick)

    def _tick(self) -> None:
        self.timer = None
        self.carry(self.jobs.tick(self.loop.clock()))

    # -- handlers ---------------------------------------------------------------------------
    def _start_step(self, action: m.StartStep) -> None:
        step = action.step
        try:
            user = account(step.run_as_user)
            owner = None if user is None else (user.uid, user.gid)
            if action.index == 0:
                self.state.prepare_work(action.raw_document, owner)
            elif owner is not None:
                self.state.give_work(owner)
            argv = step_argv(step, self.handler_dir, self.allow_commands)
            env = step_environment(action.job_id, action.execution_number,
                                   self.state.document_path, self.state.result_path, user)
            self.handler = HandlerRun(self.loop, argv, env, action.timeout,
                                      self._exited, self._progress, user, self.grace)
        except (StepRefused, CannotStart) as error:
            self._not_started(str(error))
            return
        except OSError as error:
            self._not_started(f"cannot prepare the work directory: {error.strerror or error}")
            return
        log.info("%s: job %s: step %s started (pid %d, time limit %g s)", self.thing,
                 action.job_id, step.name, self.handler.pid, action.timeout)
        identity = handler_identity(self.handler.pid)
        if self.record is not None and identity is not None:
            self.record = replace(self.record, handler=identity)
            try:  # lets the next start kill what a crash left running
                self.state.write(self.record)
            except OSError as error:
                log.warning("%s: job %s: handler pid not recorded: %s", self.thing,
                            action.job_id, error.strerror or error)

    def _not_started(self, reason: str) -> None:
        log.warning("%s: job step not started: %s", self.thing, reason)
        result = StepResult(not_started=reason)
        self.loop.call_later(0, lambda: self.carry(
            self.jobs.step_exited(result, None, self.loop.clock())))

    def _read_result(self):
        notes: List[str] = []
        result = self.state.handler_result(notes)
        if notes != self.last_notes:  # once per change, not once a second
            for note in notes:
                log.warning("%s: %s", self.thing, note)
            self.last_notes = notes
        return result

    def _progress(self) -> None:
        result = self._read_result()
        if result is not None and result.status == IN_PROGRESS:
            self.carry(self.jobs.progress_seen(result, self.loop.clock()))

    def _exited(self, result: StepResult) -> None:
        self.handler = None
        self.carry(self.jobs.step_exited(result, self._read_result(), self.loop.clock()))

    def shutdown(self) -> None:
        """At the role's exit: a running handler's group gets SIGTERM, then SIGKILL
        after the grace. Its record stays: the next start reports it."""
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.stop_and_wait()
