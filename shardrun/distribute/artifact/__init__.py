"""The image as files: the cached tarball, thin archives and OCI layouts, the CI image file."""
