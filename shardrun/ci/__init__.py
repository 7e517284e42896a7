"""What a hosted CI needs from shardrun beyond the commands: workflow files to start from."""
