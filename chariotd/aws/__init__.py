"""What AWS IoT Core defines that more than one role needs to know, as pure values.

tunnel_request  secure tunneling: the notify topic, notification and command files, the
                local proxy's command line and environment
defender_topics Device Defender: the report topic, the reply topics and their payloads

Pure: imports only the standard library, formats/ and shadow/ (tests/unit/
test_import_rules.py), no I/O, no processes.
"""
