"""The applier's building blocks: service definitions and what they need.

definitions  ServiceDefinition and loading a directory of .js, .py and .json definition files
jsmodule     reading `module.exports = { ... }` CommonJS files as data, without JavaScript
jsengine     running the other .js definitions (functions, code) in QuickJS, with limits
"""
