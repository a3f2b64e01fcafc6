"""chariotd-sim: a local stand-in for AWS IoT Core (behaviour per IOT_CORE.md; docs/sim.md).

Library API for test suites (all in ``chariotd.sim.simulator``)::

    sim = Simulator(dir, port=0).start()   # mosquitto + the service; port 0 = a free port
    sim.cafile, sim.endpoint, sim.port, sim.claimstore, sim.broker (a Mosquitto)
    sim.device(thing) -> certstore path    # certificate CN = thing name
    sim.set_desired(thing, shadow, state) / sim.set_reported(...) / sim.update_shadow(...)
    sim.get_shadow(thing, shadow=None) -> {"state", "metadata", "version"} or None
    sim.delete_shadow(thing, shadow=None); sim.publish(topic, payload)
    sim.notify_tunnel(thing, services); sim.things()
    sim.create_job(thing, document, job_id=None, in_progress_timeout=None) -> execution
    sim.list_jobs(thing) / sim.describe_job(thing, job_id) / sim.cancel_job(job_id, force)
    sim.inject_jobs_error(thing, "RequestThrottled", count=1); sim.run_timers()
    sim.defender_reports(thing) -> {"reports": [...], "rejected": [...]}
    sim.stop()                             # nothing left running; also a context manager
    SimService(host, port, cafile, certfile, keyfile, Store(dir)) serves any broker

Modules:
pki             the simulator's CA; server, device and claim certificates; certstore layout
mosquitto       a real Mosquitto broker configured like IoT Core (TLS, client certs)
acl             the broker ACL: devices write request topics and read reply topics only
topics          shadow / provisioning / jobs / defender / $iotsim topic names and parsing
shadow_service  the Device Shadow service as a pure function: (record, request) -> responses
job_states      job execution statuses and the table of who may move them where
jobs            the Jobs service for one thing as pure functions: requests, create, cancel, timers
jobs_service    Jobs for every thing over the store; injected faults; the cloud-side commands
defender        Device Defender report validation as a pure function: (record, report) -> reply
defender_service  Defender reports for every thing over the store
cbor            a small bounded CBOR codec for the .../cbor topics
shadow/         its pure parts: delta, per-leaf metadata, request validation
provisioning    fleet provisioning: CreateKeysAndCertificate, CreateCertificateFromCsr, RegisterThing
templates       provisioning templates read from DIR/templates.json
store           what the cloud keeps in DIR: shadows, certificates, things, jobs, reports, the port
service         the MQTT plumbing: a paho client (iotsim) answering request topics; the timers
simulator       Simulator: broker + service + DIR set-up, the API above; make_device()
cloud           CloudClient: the cloud commands' connection to a running simulator
main            the chariotd-sim command line
entry           its console entry point: names the extra to install when it is missing
log             one line per event on stderr, prefixed "sim:"
"""


def __getattr__(name):
    # Lazy, so `import chariotd.sim.pki` does not pull in paho and the service.
    if name in ("Simulator", "ShadowRejected", "CommandRejected"):
        from chariotd.sim import simulator
        return getattr(simulator, name)
    raise AttributeError(name)
