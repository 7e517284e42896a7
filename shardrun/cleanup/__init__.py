"""Containers shardrun started, found by label: owner labels, reaping orphans, the watchdog of a killed runner."""
