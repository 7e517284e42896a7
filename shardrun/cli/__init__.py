"""The shardrun command: the typer app, the one error handler, one module per command group."""
