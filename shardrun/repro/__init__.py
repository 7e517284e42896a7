"""repro: one shard of a past run, again, attached, as the docker CLI runs it."""
