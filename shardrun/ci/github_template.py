"""The GitHub Actions workflow `shardrun ci github` prints, as a template: the fixed part,
with its comments saying why the jobs are shaped so; ci/github.py fills in the values."""

# `${{ }}` is GitHub's, so the template's own fields are @NAME@.
# Every job starts the same: the sources, Python, shardrun.
SETUP = """\
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: @PYTHON@
      - run: @INSTALL@"""
# What one run leaves the next (issue 27): the timings balance the plan, and the record
# of shards that passed lets the build plan only what must run. The merge job writes both.
STATE = """\
          path: |
            .shardrun/timings.json
            .shardrun/results.json
          key: shardrun-state-${{ github.run_id }}-${{ github.run_attempt }}"""
# The last image file of this branch, else of the default branch. The path is the same on
# restore and save: actions/cache's version of an entry includes it.
IMAGE = """\
          path: image.tar.zst
          key: shardrun-image-${{ github.head_ref || github.ref_name }}-${{ github.sha }}"""
TEMPLATE = """\
# Made by `shardrun ci github --partitions @PARTITIONS@`: one build, up to @PARTITIONS@ partition jobs, one merge.
name: shardrun

on:
  push:
  pull_request:

permissions:
  contents: read

jobs:
  build:
    runs-on: @RUNS_ON@
    outputs:
      # The partitions with a shard to run, a JSON list from `shardrun build`: [] when
      # every shard passed before on the same content.
      partitions: ${{ steps.build.outputs.partitions }}
    steps:
@SETUP@
      - uses: actions/cache/restore@v4
        with:
@STATE@
          restore-keys: shardrun-state-
      # A hosted runner's engine starts empty: the last image is what makes the build warm
      # (--cache-from). A cache that cannot be had, even a branch name the cache refuses in a
      # key (a comma), is a cold build, never a red run.
      - id: image
        uses: actions/cache/restore@v4
        continue-on-error: true
        with:
@IMAGE@
          restore-keys: |
            shardrun-image-${{ github.head_ref || github.ref_name }}-
            shardrun-image-${{ github.event.repository.default_branch }}-
      # It reads image.tar.zst before it replaces it (atomically) with the new image.
      - id: build
        run: @BUILD@
      - if: steps.image.outputs.cache-hit != 'true'  # the same commit's image is saved already
        uses: actions/cache/save@v4
        continue-on-error: true
        with:
@IMAGE@
      # Uploaded only when a partition job will download it.
      - if: steps.build.outputs.partitions != '[]'
        uses: actions/upload-artifact@v4
        with:
          name: shardrun-image
          path: |
            image.tar.zst
            image.plan.json
          compression-level: 0  # zstd already
          retention-days: 1
          overwrite: true  # a re-run job uploads again, and artifact names are per run
      # The plan on its own, for the merge: a few kilobytes rather than the whole image.
      - uses: actions/upload-artifact@v4
        with:
          name: shardrun-plan
          path: image.plan.json
          retention-days: 1
          overwrite: true

  shards:
    needs: build
    # GitHub refuses an empty matrix: with nothing to run, no partition job starts.
    if: needs.build.outputs.partitions != '[]'
    runs-on: @RUNS_ON@
    strategy:
      fail-fast: false  # every partition reports, so the merge names every failure
      matrix:
        partition: ${{ fromJSON(needs.build.outputs.partitions) }}
    steps:
@SETUP@
      - uses: actions/download-artifact@v4
        with:
          name: shardrun-image
      # The total stays @PARTITIONS@, the plan's, whichever partitions have work.
      - run: shardrun run --plain --image image.tar.zst --plan image.plan.json --partition ${{ matrix.partition }}/@PARTITIONS@
      - if: always()
        uses: actions/upload-artifact@v4
        with:
          name: shardrun-partition-${{ matrix.partition }}
          path: .shardrun/runs/
          include-hidden-files: true
          retention-days: 1
          overwrite: true

  merge:
    needs: [build, shards]
    # Also when partitions failed (a failed or lost partition must fail the merge, by name)
    # or were skipped (the reused shards still make the report); not without a build's plan.
    if: ${{ !cancelled() && needs.build.result == 'success' }}
    runs-on: @RUNS_ON@
    steps:
@SETUP@
      - uses: actions/cache/restore@v4
        with:
@STATE@
          restore-keys: shardrun-state-
      - uses: actions/download-artifact@v4
        with:
          name: shardrun-plan
      # Matches nothing, and makes no folder, when no partition job ran.
      - uses: actions/download-artifact@v4
        with:
          pattern: shardrun-partition-*
          path: partitions
      # The plan's reused shards count as passed; the record gains every shard that passed.
      - run: shardrun merge --plain --plan image.plan.json partitions
      - if: always() && hashFiles('.shardrun/timings.json', '.shardrun/results.json') != ''
        uses: actions/cache/save@v4
        with:
@STATE@
      - if: always()
        uses: actions/upload-artifact@v4
        with:
          name: shardrun-report
          path: .shardrun/runs/
          include-hidden-files: true
          retention-days: 1
          overwrite: true
"""
