"""The real CLI, end to end, on fake engines."""
