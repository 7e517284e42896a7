"""The engine layer: the only code that imports docker, requests or paramiko; it imports nothing of shardrun's above `model`."""
