"""What the simulated cloud keeps in DIR: shadows, certificates, things and settings.

Every file is JSON written crash-safely (temp file, fsync, rename), so a restart of
``chariotd-sim up`` finds everything as the cloud would.

    DIR/sim.json                              settings recorded by `up` (the port)
    DIR/shadows/THING/classic.json            the classic shadow of THING
    DIR/shadows/THING/named/SHADOW.json       a named shadow
    DIR/registry/certificates/ID.json         certificates issued by fleet provisioning
    DIR/registry/things/THING.json            things registered by fleet provisioning
    DIR/jobs/THING.json                       THING's job executions, in creation order
    DIR/defender/THING.json                   THING's last Defender reports
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from chariotd.kernel.fsutil import write_file_atomic
from chariotd.sim.jobs import Execution, Executions
from chariotd.sim.shadow_service import ShadowRecord


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _write(path: Path, doc: dict, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic but not fsync'd: a stand-in for the cloud answers fast; a power cut of the
    # test machine may lose its last shadow update, never corrupt it.
    write_file_atomic(path, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n", mode,
                      durable=False)


class Store:
    def __init__(self, directory):
        self.root = Path(directory)

    # settings
    def settings(self) -> dict:
        return _read(self.root / "sim.json") or {}

    def save_settings(self, settings: dict) -> None:
        _write(self.root / "sim.json", settings)

    # shadows
    def _shadow_path(self, thing: str, shadow: Optional[str]) -> Path:
        base = self.root / "shadows" / thing
        return base / "named" / f"{shadow}.json" if shadow else base / "classic.json"

    def load_shadow(self, thing: str, shadow: Optional[str] = None) -> Optional[ShadowRecord]:
        doc = _read(self._shadow_path(thing, shadow))
        return None if doc is None else ShadowRecord.from_json(doc)

    def save_shadow(self, thing: str, shadow: Optional[str], record: ShadowRecord) -> None:
        _write(self._shadow_path(thing, shadow), record.to_json())

    def shadows(self) -> Iterator[Tuple[str, Optional[str]]]:
        for thing_dir in sorted((self.root / "shadows").glob("*")):
            if (thing_dir / "classic.json").exists():
                yield thing_dir.name, None
            for named in sorted((thing_dir / "named").glob("*.json")):
                yield thing_dir.name, named.stem

    # certificates and things (fleet provisioning)
    def load_certificate(self, certificate_id: str) -> Optional[dict]:
        return _read(self.root / "registry" / "certificates" / f"{certificate_id}.json")

    def save_certificate(self, record: dict) -> None:
        _write(self.root / "registry" / "certificates" / f"{record['certificateId']}.json",
               record, mode=0o600)

    def delete_certificate(self, certificate_id: str) -> None:
        (self.root / "registry" / "certificates" / f"{certificate_id}.json").unlink(
            missing_ok=True)

    def certificates(self) -> Iterator[dict]:
        for path in sorted((self.root / "registry" / "certificates").glob("*.json")):
            doc = _read(path)
            if doc is not None:
                yield doc

    def load_thing(self, name: str) -> Optional[dict]:
        return _read(self.root / "registry" / "things" / f"{name}.json")

    def save_thing(self, record: dict) -> None:
        _write(self.root / "registry" / "things" / f"{record['thingName']}.json", record)

    def things(self) -> Iterator[dict]:
        for path in sorted((self.root / "registry" / "things").glob("*.json")):
            doc = _read(path)
            if doc is not None:
                yield doc

    # jobs: one file per thing, its executions in creation order
    def load_jobs(self, thing: str) -> Executions:
        doc = _read(self.root / "jobs" / f"{thing}.json") or {}
        return tuple(Execution.from_json(e) for e in doc.get("executions", []))

    def save_jobs(self, thing: str, executions: Executions) -> None:
        _write(self.root / "jobs" / f"{thing}.json",
               {"executions": [e.to_json() for e in executions]})

    def job_things(self) -> List[str]:
        return [path.stem for path in sorted((self.root / "jobs").glob("*.json"))]

    # Device Defender: the last reports of a thing, and what the rate check needs
    def load_defender(self, thing: str) -> dict:
        return _read(self.root / "defender" / f"{thing}.json") or {}

    def save_defender(self, thing: str, record: dict) -> None:
        _write(self.root / "defender" / f"{thing}.json", record)
