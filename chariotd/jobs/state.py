"""The crash-safe record of a thing's running execution, in the state directory
(`--jobs-state`, default `HANDLER-DIR/.chariotd-jobs/`, made by the daemon):

    THING.json        the record: which execution, which step, and once the outcome
                      is known, the outcome (phase "reporting")
    THING.work/       the execution's work directory, owned by the user the step runs as
      document.json     the job document, 0600 ($JOB_DOCUMENT)
      result.json       written by the handler, if it wants ($JOB_RESULT_FILE)

Rules: the record is written durably (fsync of file and directory) before a handler
starts, and again with the outcome before the update is sent; it and the work
directory are removed only after the cloud accepted the final update. So after a
crash, a restart or a reboot, `recover` finds either the outcome to send again (the
same one, never a different one) or a handler that was running: its final result from
result.json when it wrote one (how a reboot handler reports success), else FAILED
"interrupted". A handler is never run twice by surprise. Once the handler runs, the
record also names it (boot id, pid, start time): a handler that outlived a crash of
the role is still its group's leader then, and its group is killed before the report.

The state directory is 0711, not 0700: a step with runAsUser must reach its own work
directory (0700, its owner) inside; nothing in the state directory can be listed, and
the record is 0600 root. Whatever a handler leaves in its work directory is read
through safe_open (no links followed, one link only, bounded size).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

from chariotd.kernel import fsutil, safe_open
from chariotd.formats.errors import FormatError
from chariotd.formats.json import load as load_json
from chariotd.jobs.details import (FINAL, RESULT_FILE_LIMIT, HandlerResult, Outcome,
                                   interrupted_outcome, limited, read_result)

log = logging.getLogger(__name__)

STATE_DIR_NAME = ".chariotd-jobs"
STATE_DIR_MODE = 0o711
WORK_DIR_MODE = 0o700
RECORD_LIMIT = 256 * 1024
RUNNING = "running"
REPORTING = "reporting"


@dataclass(frozen=True)
class Record:
    job_id: str
    execution_number: int
    version: int  # the execution's versionNumber as last known
    step: int = 0  # index in JobDocument.all_steps of the step running
    phase: str = RUNNING
    outcome: Optional[Outcome] = None  # set in phase REPORTING
    handler: Optional[Tuple[str, int, int]] = None  # (boot id, pid, start time) once it runs

    def reporting(self, outcome: Outcome) -> "Record":
        return replace(self, phase=REPORTING, outcome=outcome)

    def to_bytes(self) -> bytes:
        value = {"jobId": self.job_id, "executionNumber": self.execution_number,
                 "versionNumber": self.version, "step": self.step, "phase": self.phase}
        if self.handler is not None:
            value["handler"] = list(self.handler)
        if self.outcome is not None:
            value["status"] = self.outcome.status
            value["statusDetails"] = self.outcome.details
        return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> "Record":
        """FormatError when DATA is not a record this module wrote."""
        value = load_json(data)
        if not isinstance(value, dict):
            raise FormatError("not an object")
        job_id, number = value.get("jobId"), value.get("executionNumber")
        version, step = value.get("versionNumber"), value.get("step", 0)
        phase = value.get("phase")
        if not isinstance(job_id, str) or not job_id:
            raise FormatError("no jobId")
        for name, item in (("executionNumber", number), ("versionNumber", version),
                           ("step", step)):
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise FormatError(f"{name} is not a count")
        if phase not in (RUNNING, REPORTING):
            raise FormatError(f"phase {ascii(phase)[:30]} is not known")
        outcome = None
        if phase == REPORTING:
            status, details = value.get("status"), value.get("statusDetails", {})
            if status not in FINAL or not isinstance(details, dict):
                raise FormatError("no final status")
            outcome = Outcome(status, limited(details))
        handler = value.get("handler")
        if handler is not None:
            if not (isinstance(handler, list) and len(handler) == 3
                    and isinstance(handler[0], str)
                    and all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                            for n in handler[1:])):
                raise FormatError("handler is not [boot id, pid, start time]")
            handler = tuple(handler)
        return cls(job_id, number, version, step, phase, outcome, handler)


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def start_time(pid: int) -> Optional[int]:
    """When process PID started (clock ticks since boot), None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def handler_identity(pid: int) -> Optional[Tuple[str, int, int]]:
    """What tells handler PID apart from any later process that reuses the number."""
    started = start_time(pid)
    return None if started is None else (boot_id(), pid, started)


def kill_leftover_group(identity: Tuple[str, int, int]) -> bool:
    """SIGKILL to the process group of the handler IDENTITY names, when that very
    process (same boot, same pid, same start time) still leads it; True when sent.
    After a crash of the role its handler may live on; a group whose leader is gone
    is left alone (its number may belong to someone else by now)."""
    boot, pid, started = identity
    if not boot or boot != boot_id() or start_time(pid) != started:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def state_dir_problem(path: str) -> Optional[str]:
    """Make the state directory PATH (mode 0711) unless it is there; why it cannot be
    used, or None. One that exists must be a directory (not a link) owned by the
    daemon's user and writable by nobody else; its mode is then set to 0711."""
    try:
        os.mkdir(path, STATE_DIR_MODE)
    except FileExistsError:
        pass
    except OSError as error:
        return f"{path}: cannot create the jobs state directory: {error.strerror}"
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            return f"{path}: the jobs state directory is {safe_open.kind_of(st.st_mode)}"
        if st.st_uid != os.geteuid():
            return (f"{path}: the jobs state directory is owned by uid {st.st_uid}, not "
                    f"the daemon's uid {os.geteuid()}")
        os.chmod(path, STATE_DIR_MODE, follow_symlinks=False)
    except OSError as error:
        return f"{path}: {error.strerror}"
    return None


class ExecutionState:
    """The record and work directory of one thing's running execution."""

    def __init__(self, state_dir: str, thing: str):
        self.thing = thing
        self.record_path = os.path.join(state_dir, f"{thing}.json")
        self.work_dir = os.path.join(state_dir, f"{thing}.work")
        self.document_path = os.path.join(self.work_dir, "document.json")
        self.result_path = os.path.join(self.work_dir, "result.json")

    # -- the record ---------------------------------------------------------------------
    def write(self, record: Record) -> None:
        """Durably (OSError when it cannot be: the caller must not go on)."""
        fsutil.write_file_atomic(self.record_path, record.to_bytes(), mode=0o600)

    def read(self) -> Optional[Record]:
        """The record, None when there is none; FormatError/OSError when unusable."""
        try:
            data, _ = safe_open.read_file(self.record_path, RECORD_LIMIT, single_link=True)
        except FileNotFoundError:
            return None
        return Record.from_bytes(data)

    def remove(self) -> None:
        """After the final update was accepted (or the execution is gone): the record
        first, so a crash in between leaves at most a stray work directory."""
        try:
            os.unlink(self.record_path)
            fsutil.fsync_dir(os.path.dirname(self.record_path))
        except FileNotFoundError:
            pass
        self.remove_work()

    def remove_work(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)  # fd-based: links not followed

    # -- the work directory -----------------------------------------------------------
    def prepare_work(self, document: object, owner: Optional[Tuple[int, int]] = None) -> None:
        """A fresh work directory holding the document (0600); OWNER (uid, gid): the
        user a step runs as, who then owns both. The directory is root's and new while
        it is filled, so nobody can put anything in the way."""
        self.remove_work()
        os.mkdir(self.work_dir, WORK_DIR_MODE)
        os.chmod(self.work_dir, WORK_DIR_MODE)
        data = json.dumps(document, ensure_ascii=False).encode("utf-8")
        fsutil.write_file_atomic(self.document_path, data, mode=0o600)
        if owner is not None:
            self.give_work(owner)

    def give_work(self, owner: Tuple[int, int]) -> None:
        """Hand the work directory to OWNER (uid, gid) for the next step."""
        uid, gid = owner
        os.chown(self.work_dir, uid, gid, follow_symlinks=False)
        for path in (self.document_path, self.result_path):
            try:
                os.chown(path, uid, gid, follow_symlinks=False)
            except FileNotFoundError:
                pass

    def handler_result(self, notes: List[str]) -> Optional[HandlerResult]:
        """What the handler wrote to $JOB_RESULT_FILE, None when nothing usable (said
        in NOTES)."""
        try:
            data, _ = safe_open.read_file(self.result_path, RESULT_FILE_LIMIT,
                                             single_link=True)
        except FileNotFoundError:
            return None
        except OSError as error:
            notes.append(f"$JOB_RESULT_FILE: {error.strerror or error}")
            return None
        if not data.strip():
            return None  # being written, or emptied on purpose
        try:
            return read_result(data, notes)
        except FormatError as error:
            notes.append(f"$JOB_RESULT_FILE: {error}")
            return None

    # -- after a restart ------------------------------------------------------------------
    def recover(self) -> Optional[Record]:
        """At start: the record of an execution whose outcome is still to be sent (in
        phase REPORTING, written durably), or None. A record that cannot be read is
        logged and removed: nothing sane can be sent for it."""
        try:
            record = self.read()
        except (OSError, FormatError) as error:
            log.error("%s: jobs state record %s unusable, removed: %s", self.thing,
                      self.record_path, getattr(error, "strerror", None) or error)
            self.remove()
            return None
        if record is None:
            self.remove_work()
            return None
        if record.phase == RUNNING:
            if record.handler is not None and kill_leftover_group(record.handler):
                log.warning("%s: job %s: its handler (pid %d) outlived the daemon; its "
                            "process group was killed", self.thing, record.job_id,
                            record.handler[1])
            notes: List[str] = []
            outcome = interrupted_outcome(self.handler_result(notes))
            for note in notes:
                log.warning("%s: job %s: %s", self.thing, record.job_id, note)
            record = record.reporting(outcome)
            self.write(record)
        return record
