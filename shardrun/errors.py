"""Expected failures, each carrying the exit code the CLI maps it to (design.md)."""


class ShardrunError(Exception):
    exit_code = 1


class ConfigError(ShardrunError):
    """Usage or configuration error: the message names the file, key and fix."""

    exit_code = 2


class BuildError(ShardrunError):
    exit_code = 3


class InfraError(ShardrunError):
    """A daemon is unreachable, a load failed, or no worker is left."""

    exit_code = 4
