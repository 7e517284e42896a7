"""Exit codes, and the expected failures, each carrying the exit code the CLI maps it to
(README: "Exit codes")."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUILD = 3
EXIT_INFRA = 4
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a command that has no summary to return (exit 130)."""


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


class DiskFull(InfraError):
    """The runner's own disk cannot hold a file it must write (a tarball, a log).

    Not the worker's fault: a worker is never marked lost for it, and the run stops.
    """


class TransportError(InfraError):
    """A worker's engine could not be reached or dropped the connection mid-call
    (refused, reset, timed out, an SSH channel closed): the worker is in trouble, not the
    shard, so the shard goes back to the queue."""


class EngineRefused(ShardrunError):
    """The engine answered and refused a request (a 4xx: a bad mount, an unknown option):
    the shard's own options are wrong, so it is an ERROR result and is not moved."""

    exit_code = EXIT_INFRA
