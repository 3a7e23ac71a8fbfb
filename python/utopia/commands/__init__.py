"""Subcommands of `utopia`: each module defines `register(subparsers)` and sets `handler`.

A handler takes the parsed arguments and returns the exit code. It loads settings with
`utopia.config.load(args.config, overrides={...})`, passing its flags as dotted overrides.
"""
