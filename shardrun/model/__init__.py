"""Pure values every stage shares: errors and exit codes, results, shards and their run options, value parsers, image references."""
