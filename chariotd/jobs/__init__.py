"""The jobs role: AWS IoT Jobs executions run through handler programs.

- document: job documents (legacy and schema 1.0) read into steps, or rejected (pure)
- details: statusDetails within AWS's limits, step outcomes, $JOB_RESULT_FILE (pure)
- wire: Jobs MQTT topics, request payloads and replies read from the cloud (pure)
- machine: the per-thing state machine: events in, actions out (pure)
- handlers: which handler may run (the trust rule of chariotd/trust.py)
- state: the crash-safe record of the running execution and its work directory
- runner: one handler process: start, output tails, progress, timeout, stop
- thing: one thing's machine carried out in the loop: record, handlers, publishes, timers
- main: the role process: one ThingWorker per --jobs thing, talking to the link
"""
