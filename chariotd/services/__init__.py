"""The applier role: the only process that writes outfiles and runs commands.

main            the role's loop: mailbox, shadow syncs, subscriptions, tunnels, commands
shadow_sync     keeping one device shadow (classic or named) and its services in step
service         one service at run time: definition, outfile on disk, notify command
reconcile       what one service's change amounts to (pure): config, outfile text, patch
definitions     ServiceDefinition and loading a directory of .js, .py and .json files
jsmodule        reading `module.exports = { ... }` CommonJS files as data, without JavaScript
jsengine        running the other .js definitions (functions, code) in QuickJS, with limits
outfile         reading and writing service outfiles (crash-safe)
notify          notify commands with timeouts, coalesced, re-run after a crash
default_shadow  the --defaultshadow command that seeds a missing shadow
subscriptions   --subscribe-write and --subscribe-exec
tunnels         secure tunneling: one local proxy per thing
"""
