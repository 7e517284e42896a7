"""shardrun: build a test image once, run its shards across Docker workers."""

__version__ = "0.1.0"
