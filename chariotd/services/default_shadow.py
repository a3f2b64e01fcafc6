"""The default shadow command (--defaultshadow=THING:CMD): run when the shadow does not
exist yet, with the thing name on stdin and 5 seconds to answer; its JSON output
seeds the new shadow's reported state. Bad output is logged and an empty shadow is
created instead."""

from __future__ import annotations

import logging
from typing import Any, Callable

from chariotd.config import ThingShadow
from chariotd.formats import FormatError
from chariotd.formats.json import load as load_json
from chariotd.kernel.spawn import shown
from chariotd.kernel.spawn import Result, Spawner

log = logging.getLogger(__name__)

TIMEOUT = 5.0


class DefaultShadow:
    def __init__(self, spawner: Spawner, target: ThingShadow, command: str):
        self.spawner = spawner
        self.target = target
        self.command = command

    def __call__(self, seed: Callable[[Any], None]) -> None:
        log.info("%s: running the default shadow command", self.target)

        def done(result: Result) -> None:
            if not result.ok:
                log.error("%s: default shadow command %s%s; creating an empty shadow",
                          self.target, result.describe(),
                          f": {shown(result.stderr)}" if result.stderr.strip() else "")
                seed({})
                return
            try:
                document = load_json(result.stdout, envelope=1)  # {key: value, ...}
            except FormatError as error:
                log.error("%s: default shadow command output is not usable JSON (%s); "
                          "creating an empty shadow", self.target, error)
                seed({})
                return
            if not isinstance(document, dict):
                log.error("%s: default shadow command output is not a JSON object; "
                          "creating an empty shadow", self.target)
                seed({})
                return
            seed(document)

        self.spawner.run(["/bin/sh", "-c", self.command], done, timeout=TIMEOUT,
                         stdin=self.target.thing.encode(), capture_stdout=True)
