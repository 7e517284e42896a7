"""The CI systems' own variables for a job's place in a parallel matrix, named once: the
plan reads them and the CLI's help and messages name them."""

# (index, total, whether the index counts from 0)
CI_VARIABLES = (
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", False),  # GitLab `parallel: N`
    ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", True),
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", True),
)
INDEX_NAMES = ", ".join(index for index, _, _ in CI_VARIABLES)
