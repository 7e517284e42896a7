"""`shardrun ci github` across runs (issue 27): the build job's output is the matrix, the
partition jobs are skipped when it is empty, the merge runs with the plan whatever the
partitions did (not without a build), and two caches carry the last image file and the
state (timings and the record of passed shards) from one run to the next.

The job and step conditions are evaluated here by GitHub's rules for the few forms the
template uses (an `if` without a status function means `success() && ...`); a form this
evaluator does not know fails the test rather than passing unread.
"""

from __future__ import annotations

import fnmatch
import re

import pytest
import yaml

from tests.host.test_ci_workflow import lint, workflow

BRANCH = "${{ github.head_ref || github.ref_name }}"
DEFAULT_BRANCH = "${{ github.event.repository.default_branch }}"
IMAGE_KEY = f"shardrun-image-{BRANCH}-${{{{ github.sha }}}}"
STATE_KEY = "shardrun-state-${{ github.run_id }}-${{ github.run_attempt }}"
STATE_PATHS = [".shardrun/timings.json", ".shardrun/results.json"]


def jobs(partitions: int = 4) -> dict:
    return yaml.safe_load(workflow("-n", str(partitions)))["jobs"]


def where(steps: list[dict], **match: str) -> int:
    """The index of the one step whose keys (`uses`, `id`, `name` of `with`...) match."""
    found = [
        i
        for i, step in enumerate(steps)
        if all(
            step.get(key, step.get("with", {}).get(key)) == value for key, value in match.items()
        )
    ]
    assert len(found) == 1, (match, found)
    return found[0]


def running(steps: list[dict], command: str) -> int:
    found = [i for i, step in enumerate(steps) if step.get("run", "").startswith(command)]
    assert len(found) == 1, (command, found)
    return found[0]


def runs(condition: str | None, context: dict[str, str], status: str = "success") -> bool:
    """Whether GitHub runs a job or step with this `if`. `status` is how what it depends
    on went: "success", "failure" or "cancelled" (the workflow was cancelled)."""
    statuses = {
        "success": status == "success",
        "failure": status == "failure",
        "cancelled": status == "cancelled",
        "always": True,
    }
    text = (condition or "success()").strip()
    if text.startswith("${{"):
        text = text.removeprefix("${{").removesuffix("}}")
    result, has_status = True, False
    for term in (t.strip() for t in text.split("&&")):
        if m := re.fullmatch(r"(!?)(always|success|failure|cancelled)\(\)", term):
            has_status = True
            value = statuses[m[2]] != bool(m[1])
        elif m := re.fullmatch(r"([\w.-]+) (==|!=) '([^']*)'", term):
            value = (context[m[1]] == m[3]) == (m[2] == "==")
        elif m := re.fullmatch(r"hashFiles\([^)]*\) != ''", term):
            value = context["files"] != ""
        else:
            raise AssertionError(f"this evaluator does not know {term!r}")
        result = result and value
    return result and (has_status or statuses["success"])


# ---- the matrix ------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 3, 11])
def test_the_matrix_is_the_build_jobs_output_and_the_total_stays_n(partitions):
    build, shards, _ = jobs(partitions).values()
    steps = build["steps"]
    assert steps[where(steps, id="build")]["run"].startswith("shardrun build ")
    assert build["outputs"] == {"partitions": "${{ steps.build.outputs.partitions }}"}
    assert shards["needs"] == "build"
    assert shards["strategy"]["matrix"] == {
        "partition": "${{ fromJSON(needs.build.outputs.partitions) }}"
    }
    run = shards["steps"][running(shards["steps"], "shardrun run ")]["run"]
    assert run.endswith(f" --partition ${{{{ matrix.partition }}}}/{partitions}")
    assert " --image image.tar.zst --plan image.plan.json " in run


@pytest.mark.parametrize("partitions", [1, 4, 256])
def test_the_workflow_for_n_partitions_passes_actionlint(tmp_path, partitions):
    done = lint(tmp_path, workflow("-n", str(partitions)))
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_checks_the_wiring_of_outputs_and_step_ids(tmp_path):
    """actionlint knows each job's outputs and each step's id: a renamed output or build
    step is a finding, so the lint above checks the matrix's wiring."""
    text = workflow("-n", "3")
    renamed = text.replace("      partitions: ${{ steps.build", "      parts: ${{ steps.build")
    assert renamed != text
    done = lint(tmp_path, renamed)
    assert done.returncode != 0 and "partitions" in done.stdout
    unnamed = text.replace("      - id: build\n", "      - id: built\n")
    assert unnamed != text
    done = lint(tmp_path, unnamed)
    assert done.returncode != 0 and '"build"' in done.stdout


def test_which_jobs_run():
    """No change: the build runs, no partition job, the merge does. A failed build: no
    partition job and no merge (there is no plan). Failed partitions: the merge runs and
    names them. A cancelled run: no merge."""
    _, shards, merge = jobs().values()
    for output, build, partitions, shards_run, merge_runs in (
        ("[]", "success", "skipped", False, True),
        ("[1,3]", "success", "failure", True, True),
        ("[1,2,3,4]", "success", "success", True, True),
        ("", "failure", "skipped", False, False),
    ):
        context = {"needs.build.outputs.partitions": output, "needs.build.result": build}
        assert runs(shards.get("if"), context, build) is shards_run, output
        worst = "failure" if "failure" in (build, partitions) else "success"
        assert runs(merge.get("if"), context, worst) is merge_runs, output
    context = {"needs.build.outputs.partitions": "[1]", "needs.build.result": "success"}
    assert not runs(merge.get("if"), context, "cancelled")


def test_the_image_is_uploaded_only_for_partition_jobs_to_run():
    steps = jobs()["build"]["steps"]
    upload = steps[where(steps, name="shardrun-image")]
    assert not runs(upload.get("if"), {"steps.build.outputs.partitions": "[]"})
    assert runs(upload.get("if"), {"steps.build.outputs.partitions": "[2]"})
    plan = steps[where(steps, name="shardrun-plan")]
    assert runs(plan.get("if"), {"steps.build.outputs.partitions": "[]"})


# ---- the plan for the merge ------------------------------------------------------------


def test_the_merge_gets_the_plan_and_not_the_image():
    build, _, merge = jobs().values()
    plan = build["steps"][where(build["steps"], name="shardrun-plan")]
    assert (
        plan["uses"] == "actions/upload-artifact@v4" and plan["with"]["path"] == "image.plan.json"
    )
    steps = merge["steps"]
    download = where(steps, uses="actions/download-artifact@v4", name="shardrun-plan")
    assert "path" not in steps[download]["with"]  # into the workspace, as image.plan.json
    partitions = where(steps, pattern="shardrun-partition-*")
    assert steps[partitions]["with"]["path"] == "partitions"
    assert not fnmatch.fnmatch("shardrun-plan", steps[partitions]["with"]["pattern"])
    merging = running(steps, "shardrun merge ")
    assert max(download, partitions) < merging
    assert steps[merging]["run"] == "shardrun merge --plain --plan image.plan.json partitions"
    assert not any(s.get("with", {}).get("name") == "shardrun-image" for s in steps)


# ---- the caches ------------------------------------------------------------------------


def test_the_last_image_is_restored_before_the_build_and_saved_after_it():
    steps = jobs()["build"]["steps"]
    restore, build = where(steps, id="image"), where(steps, id="build")
    save = where(steps, uses="actions/cache/save@v4")
    assert restore < build < save
    assert steps[restore]["uses"] == "actions/cache/restore@v4"
    assert steps[restore]["with"]["key"] == steps[save]["with"]["key"] == IMAGE_KEY
    # The same path both ways: actions/cache's version of an entry includes it.
    assert steps[restore]["with"]["path"] == steps[save]["with"]["path"] == "image.tar.zst"
    assert steps[restore]["with"]["restore-keys"].splitlines() == [
        f"shardrun-image-{BRANCH}-",
        f"shardrun-image-{DEFAULT_BRANCH}-",
    ]
    words = steps[build]["run"].split()
    assert words[words.index("--cache-from") + 1] == words[words.index("--output") + 1]
    assert words[words.index("--output") + 1] == "image.tar.zst"
    # A cache that cannot be had is a cold build, not a failed job.
    assert steps[restore]["continue-on-error"] is steps[save]["continue-on-error"] is True
    assert not runs(steps[save].get("if"), {"steps.image.outputs.cache-hit": "true"})
    assert runs(steps[save].get("if"), {"steps.image.outputs.cache-hit": "false"})
    assert runs(steps[save].get("if"), {"steps.image.outputs.cache-hit": ""})
    assert not runs(steps[save].get("if"), {"steps.image.outputs.cache-hit": ""}, "failure")


def test_the_state_is_restored_by_the_build_and_the_merge_and_saved_by_the_merge():
    build, shards, merge = jobs().values()
    for job, command in ((build, "shardrun build "), (merge, "shardrun merge ")):
        steps = job["steps"]
        restore = where(steps, uses="actions/cache/restore@v4", key=STATE_KEY)
        assert restore < running(steps, command)
        assert steps[restore]["with"]["path"].splitlines() == STATE_PATHS
        assert steps[restore]["with"]["restore-keys"] == "shardrun-state-"
    steps = merge["steps"]
    save = where(steps, uses="actions/cache/save@v4")
    assert save > running(steps, "shardrun merge ")
    assert steps[save]["with"] == {"path": "\n".join(STATE_PATHS) + "\n", "key": STATE_KEY}
    # Saved after a failed merge too (what passed is recorded), not when nothing was written.
    assert runs(steps[save]["if"], {"files": "abc"}, "failure")
    assert not runs(steps[save]["if"], {"files": ""})
    # Only the merge saves state; the partition jobs use no cache.
    assert not any("actions/cache" in s.get("uses", "") for s in shards["steps"])
    assert not any(
        s.get("uses") == "actions/cache/save@v4" and s["with"]["key"] == STATE_KEY
        for s in build["steps"]
    )
