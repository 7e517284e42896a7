"""Plans and state files through the real CLI: a FIFO, a link out of .shardrun or a hostile
path in a report is one line and exit 2 (or, for shardrun's own state, ignored with one
line), within seconds, before any engine is contacted, and nothing planted outside is
read into any output."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.host.test_cli_errors import shardrun

TOML = '[[shard]]\nname = "a"\ncommand = "true"\n\n[[shard]]\nname = "b"\ncommand = "true"\n'
PLANTED = "PLANTED-SECRET-7f3a"


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "Dockerfile.test").write_text("FROM scratch\n")
    (root / "shards.toml").write_text(TOML)
    (tmp_path / "planted").write_text(f"{PLANTED}\n")
    return root


def a_run(root, report=None, run_id="r1"):
    folder = root / ".shardrun" / "runs" / run_id
    folder.mkdir(parents=True)
    shards = [{"name": "a", "status": "FAIL", "worker": "local", "log": f"/x/{run_id}/a.log"}]
    (folder / "report.json").write_text(json.dumps(report or {"run_id": run_id, "shards": shards}))
    (folder / "a.log").write_text("a's log\n")
    (root / ".shardrun" / "runs" / "latest").symlink_to(run_id)
    return folder


def quick(root, *args):
    began = time.monotonic()
    done = shardrun(root, *args)
    return done, time.monotonic() - began


def test_a_fifo_as_the_latest_report_is_refused_at_once(proj):
    folder = a_run(proj)
    (folder / "report.json").unlink()
    os.mkfifo(folder / "report.json")
    for args in (
        ("show",),
        ("run", "--failed", "--plain"),
        ("show", "r1", "a"),
        ("repro", "a", "--run", "r1", "--print"),
        ("repro", "a", "--run", str(folder), "--print"),
    ):
        done, took = quick(proj, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "a FIFO, not a regular file" in done.stderr
        assert "is not a shardrun report" in done.stderr and took < 20
    done, took = quick(proj, "runs")
    assert done.returncode == 0 and "r1" not in done.stdout and took < 20


@pytest.mark.parametrize("log", ["PLANTED", "/x/r1/../../../../planted", "../../../planted"])
def test_show_prints_no_file_a_report_names_outside_its_run(proj, tmp_path, log):
    log = str(tmp_path / "planted") if log == "PLANTED" else log
    a_run(
        proj,
        {
            "run_id": "r1",
            "shards": [{"name": "a", "status": "FAIL", "worker": "local", "log": log}],
        },
    )
    done = shardrun(proj, "show", "r1", "a")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "is not one to show" in done.stderr
    assert PLANTED not in done.stdout + done.stderr


def test_show_prints_no_log_that_links_out_of_its_run(proj, tmp_path):
    folder = proj / ".shardrun" / "runs" / "r1"
    a_run(
        proj,
        {
            "run_id": "r1",
            "shards": [  # as a run here records it: an absolute path
                {"name": "a", "status": "FAIL", "worker": "local", "log": str(folder / "a.log")}
            ],
        },
    )
    assert shardrun(proj, "show", "r1", "a").stdout == "a's log\n"
    (folder / "a.log").unlink()
    (folder / "a.log").symlink_to(tmp_path / "planted")
    done = shardrun(proj, "show", "r1", "a")
    assert done.returncode == 2 and PLANTED not in done.stdout + done.stderr


def test_links_out_of_the_state_folder_are_never_read(proj, tmp_path):
    """timings.json, workers.json and a run's report.json that link to files outside
    .shardrun: ignored (own state, one line) or refused (a report), never read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "timings.json").write_text(json.dumps({"durations": {"b": 99.0, "a": 1.0}}))
    folder = a_run(proj)
    (outside / "report.json").write_text((folder / "report.json").read_text())
    (folder / "report.json").unlink()
    (folder / "report.json").symlink_to(outside / "report.json")
    (proj / ".shardrun" / "timings.json").symlink_to(outside / "timings.json")

    listed = shardrun(proj, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[::2] == ["a", "b"]  # the file order: no history read
    assert listed.stderr.startswith("shardrun: ignoring ") and listed.stderr.count("\n") == 1
    assert "timings.json" in listed.stderr and "rewritten by the next run" in listed.stderr

    done = shardrun(proj, "show")
    assert done.returncode == 2 and "is not a shardrun report" in done.stderr
    assert shardrun(proj, "runs").stdout.strip() == "no runs recorded yet; `shardrun run` makes one"


def plan(proj, parts, **change):
    from shardrun.config.load import load
    from shardrun.plan import partition, plan_file

    cfg = load(proj / "shards.toml")
    data = {
        "schema": plan_file.SCHEMA,
        "image_id": "sha256:" + "ab" * 32,
        "config": partition.config_digest(cfg),
        "expected": [1.0] * len(parts),
        "partitions": parts,
        **change,
    }
    (proj / "image.plan.json").write_text(json.dumps(data))


RUN, LIST = ("run", "--plain"), ("list",)


@pytest.mark.parametrize(
    "parts, change, phrase, commands",
    [
        (
            [[{"name": "a"}], [{"name": "b"}, {"name": "../../tmp/x"}]],
            {},
            "is not a shard of a plan",
            (RUN, LIST),
        ),
        ([[{"name": "a"}], [{"name": "b"}, {"name": "c"}]], {}, 'its shard "c" is not one', (RUN,)),
        (
            [[{"name": "a"}], [{"name": "b"}]],
            {"expected": [1.0, float("inf")]},
            "Infinity",
            (RUN, LIST),
        ),
        (
            [[{"name": "a"}], [{"name": "b"}]],
            {"expected": [1.0, -3]},
            "expected holds -3",
            (RUN, LIST),
        ),
    ],
)
def test_a_hand_edited_plan_stops_the_job_before_any_engine(proj, parts, change, phrase, commands):
    plan(proj, parts, **change)
    for args in commands:
        done = shardrun(proj, *args, "--plan", "image.plan.json", "--partition", "2/2")
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and phrase in done.stderr
        assert "write it again with `shardrun build --output FILE --partitions N`" in done.stderr


def test_a_fifo_as_the_plan_is_refused_at_once(proj):
    os.mkfifo(proj / "image.plan.json")
    done, took = quick(proj, "run", "--plain", "--plan", "image.plan.json", "--partition", "1/2")
    assert done.returncode == 2 and "a FIFO, not a regular file" in done.stderr and took < 20


SPLIT = (
    '[[shard]]\nname = "t-{index}"\ncount = 2\nsplit = ["tests/*.py"]\ncommand = "pytest {files}"\n'
)


def test_a_partition_job_runs_the_plans_split_files_only_as_its_checkout_has_them(proj):
    from shardrun.config.load import load
    from shardrun.image.context_files import split_files
    from shardrun.model.errors import ConfigError
    from shardrun.plan import partition

    (proj / "shards.toml").write_text(SPLIT)
    (proj / "tests").mkdir()
    for name in ("a", "b", "c"):
        (proj / "tests" / f"test_{name}.py").write_text("")
    (proj / ".dockerignore").write_text("tests/test_c.py\n")
    (proj / "secrets.txt").write_text("")
    cfg = load(proj / "shards.toml")
    hostile = {"command": ["sh", "-c", "cat /etc/shadow"], "docker_socket": True}
    plan(
        proj,
        [
            [{"name": "t-1", "files": ["tests/test_b.py"], **hostile}],
            [{"name": "t-2", "files": ["tests/test_a.py"], "options": hostile}],
        ],
    )
    share = partition.for_job(cfg, None, proj / "image.plan.json", "1/2", {}, split_files(cfg))
    assert share is not None
    (shard,) = share.shards
    assert shard.command == ("pytest", "tests/test_b.py") and not shard.docker_socket
    for stray in ("secrets.txt", "tests/test_c.py"):  # not matched, or not in the context
        plan(
            proj,
            [[{"name": "t-1", "files": [stray]}], [{"name": "t-2", "files": ["tests/test_a.py"]}]],
        )
        with pytest.raises(ConfigError, match=f'the file "{stray}", which its split'):
            partition.for_job(cfg, None, proj / "image.plan.json", "2/2", {}, split_files(cfg))


def test_show_prints_a_downloaded_runs_own_summary(proj, tmp_path):
    a_run(proj)
    downloads = tmp_path / "downloads"
    a_run(downloads, run_id="ci-7")
    for given in (
        str(downloads / ".shardrun" / "runs" / "ci-7"),
        str(downloads / ".shardrun" / "runs" / "ci-7" / "report.json"),
    ):
        done = shardrun(proj, "show", given)
        assert done.returncode == 0, done.stderr
        assert first_line(done.stdout) == "shardrun ci-7", done.stdout
    assert first_line(shardrun(proj, "show").stdout) == "shardrun r1"


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()  # the table's title, padded to its width


def test_show_prints_the_summary_as_the_run_did_not_markdown(proj):
    """The table the run ended with (plain here: no terminal), from report.json; not
    summary.md, whose `|---|` rows are for a CI page."""
    folder = a_run(
        proj,
        {
            "run_id": "r1",
            "started": 1000.0,
            "finished": 1012.5,
            "exit_code": 1,
            "workers": [{"name": "local", "url": "unix:///s", "slots": 1}],
            "shards": [
                {
                    "name": "a",
                    "status": "FAIL",
                    "exit_code": 1,
                    "started": 1000.0,
                    "finished": 1010.0,
                    "worker": "local",
                    "slot": 1,
                    "log": "/x/r1/a.log",
                    "test_cases": [
                        {"classname": "t.test_a", "name": "test_x", "outcome": "failure"},
                        {
                            "classname": "t.test_a",
                            "name": "test_y",
                            "outcome": "passed",
                            "flaky": True,
                        },
                    ],
                },
            ],
        },
    )
    (folder / "summary.md").write_text("| shard |\n|---|\n")

    done = shardrun(proj, "show")

    assert done.returncode == 0, done.stderr
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    assert lines[0] == "shardrun r1" and "|---|" not in done.stdout
    row = next(line for line in lines if " a " in line)
    assert ["FAIL", "10.0s", "1", "local/1", str(folder / "a.log")] == [
        cell.strip() for cell in row.strip("│┃ ").split("│")
    ][1:]
    assert "failing in a: t.test_a::test_x" in lines
    assert "1 shard: 1 fail, 1 flaky test in 12.5s: failed (exit 1)" in lines
    assert f"report: {folder / 'report.json'}" in lines
    assert f"report: {folder / 'summary.md'}" in lines
    assert "\x1b" not in done.stdout


@pytest.mark.parametrize("where", ["local", "downloaded"])
def test_show_opens_no_summary_md_a_fifo_there_does_not_hang_it(proj, tmp_path, where):
    folder = a_run(proj if where == "local" else tmp_path / "downloads")
    os.mkfifo(folder / "summary.md")
    done, took = quick(proj, "show", *([str(folder)] if where == "downloaded" else []))
    assert done.returncode == 0 and first_line(done.stdout) == "shardrun r1", done.stderr
    assert took < 20


@pytest.mark.parametrize("link", ["file", "folder"])
def test_show_reads_nothing_a_summary_md_links_to(proj, tmp_path, link):
    folder = a_run(proj)
    if link == "file":
        (folder / "summary.md").symlink_to(tmp_path / "planted")
    else:  # a link to a folder outside, through which the planted file is named
        (folder / "up").symlink_to(tmp_path)
        (folder / "summary.md").symlink_to("up/planted")
    done = shardrun(proj, "show")
    assert done.returncode == 0, done.stderr
    assert PLANTED not in done.stdout + done.stderr


def test_a_report_named_path_out_of_its_run_is_shown_as_no_file(proj, tmp_path):
    a_run(
        proj,
        {
            "run_id": "r1",
            "shards": [
                {
                    "name": "a",
                    "status": "ERROR",
                    "worker": "local",
                    "log": str(tmp_path / "planted"),
                    "detail": "no container",
                    "artifacts": ["/x/r1/../../../planted"],
                },
            ],
        },
    )
    done = shardrun(proj, "show")
    assert done.returncode == 0, done.stderr
    assert PLANTED not in done.stdout and "planted" not in done.stdout
    assert "no container" in done.stdout  # the detail stands where no log is


def test_a_report_of_the_wrong_shape_for_a_summary_is_one_line(proj):
    a_run(proj, {"run_id": "r1", "shards": [{"name": "a", "status": "MAYBE", "worker": "w"}]})
    done = shardrun(proj, "show")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "report.json is not one to show (shards[1].status is 'MAYBE', not one of" in done.stderr
