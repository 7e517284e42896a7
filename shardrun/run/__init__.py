"""Stage 5, run: the workflow, connecting workers, the queue over slots, one shard in one container (shard/)."""
