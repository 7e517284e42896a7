"""Stage 3, build: Dockerfile.test built once with BuildKit, and its progress stream."""
