"""Stage 4, distribute: the image onto each worker, sending only what it lacks (tarballs, thin tarballs, OCI layouts)."""
