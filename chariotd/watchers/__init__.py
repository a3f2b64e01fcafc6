"""Action directories (tmp/ new/ failed/) and what is done with their files.

actiondir     the generic engine: inotify on new/, startup scan, removal, failed/ pruning
message_file  parse and check a message file (pure)
queue         the messages backlog and its order (pure)
messages      the messages handler: window, retries, jam detection, talking to the link
main          the watcher roles' entry points
"""
