"""Expected failures, each carrying the exit code the CLI maps it to (design.md)."""

from shardrun.results import EXIT_BUILD, EXIT_FAILED, EXIT_INFRA, EXIT_USAGE


class ShardrunError(Exception):
    exit_code = EXIT_FAILED


class ConfigError(ShardrunError):
    """Usage or configuration error: the message names the file, key and fix."""

    exit_code = EXIT_USAGE


class BuildError(ShardrunError):
    exit_code = EXIT_BUILD


class InfraError(ShardrunError):
    """A daemon is unreachable, a load failed, or no worker is left."""

    exit_code = EXIT_INFRA
