"""The words for how the image travels and is stored: the codecs, a worker's `compress`
setting, and the suffixes of an image file that say its codec. One home, so the config,
the transfers, the image file, the plan beside it and the reports cannot disagree."""

NONE, GZIP, ZSTD = "none", "gzip", "zstd"
CODECS = (NONE, GZIP, ZSTD)
AUTO = "auto"  # a worker's setting: the codec is chosen by measurement
COMPRESS_SETTINGS = (AUTO, *CODECS)
# `build --output NAME`: the codec its name asks for, longest suffix first.
IMAGE_FILE_SUFFIXES = {".tar.zst": ZSTD, ".tar.gz": GZIP, ".tgz": GZIP, ".tar": NONE}
