"""The .shardrun/ state folder: its layout, fault-safe writes (temp files, locks), cleaning old files."""
