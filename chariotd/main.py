"""`chariotd` command: parse and validate the configuration, then hand the tree to
the supervisor. A configuration error is one log line (`chariotd: error: ...`, with its
journald priority and escaped like every line: kernel/log.py) and exit status 2."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable, List, Optional

from chariotd import cli
from chariotd.kernel import log
from chariotd.certstore import Certstore, CertstoreError
from chariotd.config import Config, ConfigError
from chariotd.kernel.runtime import APPLIER, DEFENDER, JOBS, LINK, Role

ACTION_SUBDIRS = ("tmp", "new", "failed")


def prepare_action_dir(path: str, flag: str) -> None:
    """Create DIR/tmp, DIR/new and DIR/failed when missing."""
    for sub in ACTION_SUBDIRS:
        target = os.path.join(path, sub)
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"--{flag}: cannot create {target}: {error.strerror}") from None
        if not os.access(target, os.W_OK | os.X_OK):
            raise ConfigError(f"--{flag}: {target} is not writable")


def validate_fleetprov(config: Config) -> None:
    """The --fleetprov file and its claimstore (a certstore with its own endpoint.txt
    and at least one claim certificate)."""
    from chariotd.kernel.extras import missing
    from chariotd.provisioning.fleetprov import FleetProvError, load
    problem = missing("fleetprov")
    if problem:
        raise ConfigError(f"--fleetprov: fleet provisioning {problem}")
    try:
        fleetprov = load(config.fleetprov)
    except FleetProvError as error:
        raise ConfigError(f"--fleetprov={config.fleetprov}: {error}") from None
    if len(config.clientid.encode()) > 125:
        raise ConfigError("--clientid: at most 125 bytes with --fleetprov (provisioning "
                          "connects as CLIENTID-fp)")
    claimstore = Certstore(fleetprov.claimstore)
    if not os.path.isdir(fleetprov.claimstore):
        raise ConfigError(f"--fleetprov={config.fleetprov}: claimstore "
                          f"{fleetprov.claimstore} is not a directory")
    try:
        claimstore.endpoint()
        if not claimstore.certificates():
            raise CertstoreError(f"claimstore {fleetprov.claimstore} holds no certificate")
    except CertstoreError as error:
        raise ConfigError(f"--fleetprov={config.fleetprov}: {error}") from None


def validate_jobs(config: Config) -> None:
    """Each --jobs handler directory passes the trust rule; each state directory is
    made (0711) or is usable. A problem is a configuration error (exit 2)."""
    from chariotd.jobs.handlers import directory_problem
    from chariotd.jobs.state import state_dir_problem
    for thing, directory in config.jobs.things:
        if not os.path.isdir(directory):
            raise ConfigError(f"--jobs={thing}:{directory}: not a directory")
        problem = directory_problem(directory)
        if problem:
            raise ConfigError(f"--jobs={thing}:{directory}: {problem}")
        state = config.jobs.state_of(directory)
        problem = state_dir_problem(state)
        if problem:
            flag = "--jobs-state" if config.jobs.state_dir else f"--jobs={thing}:{directory}"
            raise ConfigError(f"{flag}: {problem}")


def validate(config: Config) -> None:
    """Checks that look at the file system; raise ConfigError."""
    from chariotd.kernel.mqtt.session import CaProblem, check_ca
    try:  # empty, unreadable, not a file, not PEM: one line naming the file (exit 2)
        check_ca(config.cacert)
    except CaProblem as error:
        raise ConfigError(str(error)) from None
    if not os.path.isdir(config.certstore):
        raise ConfigError(f"--certstore: {config.certstore} is not a directory")
    if not os.access(config.certstore, os.W_OK | os.X_OK):
        raise ConfigError(f"--certstore: {config.certstore} is not writable")
    try:
        Certstore(config.certstore).endpoint()
    except CertstoreError as error:
        raise ConfigError(f"--certstore: {error}") from None
    if config.fleetprov:
        validate_fleetprov(config)
    for message_dir in config.messages:
        prepare_action_dir(message_dir.path, "messages")
    for _, path in config.updates:
        prepare_action_dir(path, "updates")
    if config.commands:
        prepare_action_dir(config.commands, "commands")
    for target, directory in config.services:
        if not os.path.isdir(directory):
            raise ConfigError(f"--services={target}:{directory}: not a directory")
    if config.tunnelcadir and not os.path.isdir(config.tunnelcadir):
        raise ConfigError(f"--tunnelcadir: {config.tunnelcadir} is not a directory")
    if config.defender and config.defender.custom_dir and not os.path.isdir(
            config.defender.custom_dir):
        raise ConfigError(f"--defender-custom: {config.defender.custom_dir} is not a directory")
    if config.jobs:
        validate_jobs(config)


def _provisioner(config: Config) -> Optional[Callable]:
    """The link's role options: with --fleetprov, the factory of fleet provisioning.

    Provisioning runs inside the "chariotd: link" process, driven by the link's poll
    loop: its claim connection is a second MQTT connection, and the link is the only
    process that touches the network; `reprovision` runs while the link stays
    connected, and a first boot without a certificate ends the link (exit 0, the tree
    restarts with the new certificate). The entry point, not the link, imports it, so
    no role imports another and its code is loaded only when it is configured."""
    if not config.fleetprov:
        return None
    from functools import partial

    from chariotd.provisioning.claim import Provisioning, failure_pause_from_environment
    return partial(Provisioning, failure_pause=failure_pause_from_environment(os.environ))


def build_roles(config: Config) -> List[Role]:
    # Only the code of the roles this configuration runs is imported (before the fork,
    # so the children share its pages): a tree without services never loads the applier.
    from chariotd.broker_link.main import run as run_link
    from chariotd.watchers.main import run_commands, run_messages, run_updates

    roles = [Role(LINK, "chariotd: link", "link", run_link, _provisioner(config))]
    if config.wants_applier:
        from chariotd.services.main import run as run_applier
        roles.append(Role(APPLIER, "chariotd: applier", "applier", run_applier))
    for index, message_dir in enumerate(config.messages):
        roles.append(Role(f"msg{index}", f"chariotd: watch messages {message_dir.path}",
                          f"watch {message_dir.path}", run_messages, message_dir))
    for index, (target, path) in enumerate(config.updates):
        roles.append(Role(f"upd{index}", f"chariotd: watch updates {target} {path}",
                          f"watch {path}", run_updates, (target, path)))
    if config.commands:
        roles.append(Role("cmd", f"chariotd: watch commands {config.commands}",
                          f"watch {config.commands}", run_commands, config.commands))
    if config.defender:
        from chariotd.defender.main import run as run_defender
        roles.append(Role(DEFENDER, f"chariotd: defender {config.defender.thing}",
                          "defender", run_defender, config.defender))
    if config.jobs:
        from chariotd.jobs.main import run as run_jobs
        things = " ".join(thing for thing, _ in config.jobs.things)
        roles.append(Role(JOBS, f"chariotd: jobs {things}", "jobs", run_jobs, config.jobs))
    return roles


def main(argv: Optional[List[str]] = None) -> None:
    log.setup("chariotd")
    try:
        config = cli.parse(sys.argv[1:] if argv is None else argv)
        validate(config)
    except ConfigError as error:
        logging.getLogger(__name__).error("%s", error)
        sys.exit(2)
    log.setup("chariotd", config.log_level)
    import setproctitle

    from chariotd.supervisor import Supervisor
    setproctitle.setproctitle("chariotd")
    sys.exit(Supervisor(config, build_roles(config)).run())


if __name__ == "__main__":
    main()
