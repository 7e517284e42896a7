"""Stage 2, plan: the config expanded into shards, split groups, times, reruns (pure but for reading files)."""
