"""The image in transit: codecs, which one each worker gets, each layer compressed once a run."""
