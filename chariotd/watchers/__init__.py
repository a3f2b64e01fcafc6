"""Action directories (tmp/ new/ failed/) and what is done with their files.

actiondir     the generic engine: inotify on new/, startup scan, removal, failed/ pruning
message_file  parse and check a message file (pure)
compression   gzip / deflate of a payload (pure)
letterhead    letterhead parsing, merging, and the generator's environment (pure)
queue         the messages backlog: order, priorities, slots (pure)
messages      the messages handler: backlog, window, retries, jam detection, letterheads
requests      the updates and commands handlers: each file a request to the link or applier
main          the watcher roles' entry points
"""
