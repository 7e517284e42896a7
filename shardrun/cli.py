"""The `shardrun` command: parse options, run the workflow, map outcomes to exit codes.

Each command imports what it uses when it runs (issue 7): `--help` costs typer alone,
`list` the config and plan modules, and only the commands that talk to an engine pay for
docker-py, requests, anyio and rich.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from shardrun.errors import ConfigError, ShardrunError
from shardrun.results import EXIT_INTERRUPTED

if TYPE_CHECKING:
    import anyio
    from rich.console import Console

    from shardrun import config as config_mod
    from shardrun import plan
    from shardrun.events import Emitter

app = typer.Typer(
    add_completion=True,  # typer's --install-completion / --show-completion
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Build Dockerfile.test once and run the shards of shards.toml concurrently.",
)

EXIT_INTERNAL = 70
T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", metavar="PATH", help="shards.toml, or a pyproject.toml with [tool.shardrun]."),
]
def _complete_shards(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shard names for the shell, read from the config (--config, or found from here)
    without touching an engine; nothing on any error: a completion never prints one."""
    try:
        from shardrun import config as config_mod
        from shardrun import plan

        path = ctx.params.get("config")
        names = [s.name for s in plan.expand(config_mod.load(path))]
    except Exception:  # noqa: BLE001 - a broken config completes nothing
        return []
    return [name for name in names if name.startswith(incomplete)]


def _complete_runs(ctx: typer.Context, incomplete: str) -> list[str]:
    """Run IDs under .shardrun/runs of the config's project, newest first."""
    try:
        from shardrun import config as config_mod
        from shardrun import housekeeping

        root = config_mod.load(ctx.params.get("config")).root
        ids = [row.run_id for row in housekeeping.past_runs(root / ".shardrun")]
    except Exception:  # noqa: BLE001 - as _complete_shards
        return []
    return [run_id for run_id in ids if run_id.startswith(incomplete)]


ShardOpt = Annotated[
    list[str] | None,
    typer.Option("--shard", "-s", metavar="NAME", help="Only shards matching this name or glob (repeatable).",
                 autocompletion=_complete_shards),
]
BuildArgOpt = Annotated[
    list[str] | None,
    typer.Option("--build-arg", metavar="KEY=VALUE", help="KEY=VALUE, overriding [image] build-args (repeatable)."),
]
BuilderOpt = Annotated[
    str | None,
    typer.Option("--builder", metavar="WORKER", help="The engine that builds: a [[worker]] name, "
                 "a docker context or an engine URL (default: [image] builder, else the current context)."),
]
PlainOpt = Annotated[
    bool, typer.Option("--plain", help="Timestamped plain lines instead of the live view.")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
WorkerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--worker", "-w", metavar="WORKER",
        help="A docker context or engine URL (ssh://, tcp://, unix://), optionally *SLOTS; "
        "repeatable; replaces the [[worker]] tables. 'default' is the current context.",
    ),
]


class Interrupted(Exception):
    pass


def _fail(message: str, code: int) -> None:
    print(f"shardrun: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def handles_errors(command: Callable) -> Callable:
    """The one error handler: expected errors are one message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False)
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BaseException as exc:
            exc = _unwrap(exc)
            if debug:
                traceback.print_exception(exc)
            if isinstance(exc, ShardrunError):
                _fail(str(exc), exc.exit_code)
            if isinstance(exc, (KeyboardInterrupt, Interrupted)):
                print("shardrun: interrupted", file=sys.stderr)
                raise typer.Exit(EXIT_INTERRUPTED) from None
            if isinstance(exc, typer.Exit):
                raise exc from None
            log = _write_crash_log(exc)
            _fail(f"internal error: {exc!r}; the traceback is in {log}; please report it",
                  EXIT_INTERNAL)

    return wrapper


def _write_crash_log(exc: BaseException) -> str:
    """Keep the traceback of an unexpected error where the user can attach it to a report."""
    path = Path(tempfile.gettempdir()) / f"shardrun-crash-{os.getpid()}.log"
    with open(path, "w") as out:
        traceback.print_exception(exc, file=out)
    return str(path)


def _unwrap(exc: BaseException) -> BaseException:
    """anyio task groups wrap what their tasks raise; the user needs the error itself.

    Several expected errors at once (two engines unreachable, say) show the first.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = _leaves(exc)
    expected = [e for e in leaves if isinstance(e, (ShardrunError, KeyboardInterrupt, Interrupted))]
    return expected[0] if len(expected) == len(leaves) else exc


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _load(config_path: Path | None, build_args: list[str] | None,
          builder: str | None = None) -> config_mod.Config:
    from shardrun import config as config_mod

    config = config_mod.load(config_path)
    if builder:
        config = dataclasses.replace(config, image=dataclasses.replace(config.image,
                                                                       builder=builder))
    if not build_args:
        return config
    overrides = {}
    for item in build_args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f'--build-arg "{item}": expected KEY=VALUE, e.g. BASE_IMAGE=debian')
        overrides[key] = value
    image = dataclasses.replace(
        config.image, build_args={**config.image.build_args, **overrides}
    )
    return dataclasses.replace(config, image=image)


def _view(plain: bool):
    from rich.console import Console

    from shardrun import ui

    if plain or not sys.stdout.isatty():
        return ui.PlainView(sys.stdout), _plain_console()
    console = Console()
    return ui.LiveView(console), console


def _plain_console() -> Console:
    from rich.console import Console

    # No terminal: rich emits no escape codes; wide, so paths are not folded.
    return Console(force_terminal=False, no_color=True, width=160, highlight=False)


async def _drive(
    view, work: Callable[[Emitter, anyio.Event], Awaitable[T]], leftovers: str = ""
) -> T:
    """Run `work` with an event stream into `view`, and Ctrl-C / SIGTERM as an interrupt.

    The first signal asks `work` to stop and clean up; a second says cleanup is under
    way; a third exits at once, saying what may be left (`leftovers`).
    """
    import math
    import signal

    import anyio

    from shardrun.events import Emitter, Event

    send, receive = anyio.create_memory_object_stream[Event](math.inf)

    async def consume() -> None:
        async with receive:
            async for event in receive:
                view.handle(event)

    async def watch_signals(interrupt: anyio.Event, *, task_status) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            count = 0
            async for _ in signals:
                count += 1
                if count == 1:
                    interrupt.set()
                elif count == 2:
                    print("shardrun: still cleaning up (removing what this run started); "
                          "interrupt once more to exit at once", file=sys.stderr, flush=True)
                else:
                    left = f": {leftovers}" if leftovers else ""
                    print(f"shardrun: exiting without cleaning up{left}", file=sys.stderr)
                    _exit(EXIT_INTERRUPTED)

    interrupt = anyio.Event()
    async with anyio.create_task_group() as outer:
        outer.start_soon(consume)
        with send:
            async with anyio.create_task_group() as inner:
                await inner.start(watch_signals, interrupt)  # before any work
                try:
                    return await work(Emitter(send), interrupt)
                finally:
                    inner.cancel_scope.cancel()


def _planned(config: config_mod.Config, patterns: list[str] | None,
             slots: int = 1) -> list[plan.Shard]:
    from shardrun import plan, timings

    path = config.timings_path
    files, file_times = None, None
    if any(spec.split for spec in config.shards):  # the build context's files, to split
        from shardrun.engine.context import context_files

        files = context_files(config.image.context, config.image.dockerfile)
        file_times = timings.load_files(path)
    selected = plan.select(plan.expand(config, files, file_times, slots), patterns or [])
    return plan.order(selected, timings.load(path))


def _copy_report(made: Path, wanted: Path) -> Path:
    """A copy of a run's report where CI wants it (atomically: a reader never sees half)."""
    from shardrun.timings import write_atomic

    try:
        write_atomic(wanted, made.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot write {wanted}: {exc.strerror}; give a writable path") from None
    return wanted


def _only_failed(cfg, shards: tuple, run_id: str | None) -> tuple:
    """The shards that failed, timed out or errored in that run; exits 0 if none did."""
    from shardrun import history, plan

    past = history.load(cfg.root / ".shardrun", run_id)
    names = past.failed_names()
    if not names:
        print(f"shardrun: run {past.run_id} had no failed shards; nothing to run")
        raise typer.Exit(0)
    # A split shard reruns the files it had then, not this plan's group of the same name.
    recorded = {s.name: plan.from_json(opts) for s in shards if s.name in names and s.files
                and (opts := (past.shard(s.name) or {}).get("options"))}
    chosen = tuple(recorded.get(s.name, s) for s in shards if s.name in names)
    if not chosen:
        raise ConfigError(f"none of the shards that failed in run {past.run_id} "
                          f"({', '.join(sorted(names)[:5])}) is in the config any more")
    return chosen


@app.command()
@handles_errors
def run(
    config: ConfigOpt = None,
    shard: ShardOpt = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, metavar="N", help="At most N containers at once; also the slots "
                     "of a worker that declares none (default: its CPU count)."),
    ] = None,
    retries: Annotated[
        int, typer.Option(min=0, metavar="N", help="Run a failed or timed-out shard again up to N times.")
    ] = 0,
    build_arg: BuildArgOpt = None,
    builder: BuilderOpt = None,
    worker: WorkerOpt = None,
    require_all_workers: Annotated[
        bool, typer.Option("--require-all-workers", help="Exit 4 if any worker is lost or "
                           "unreachable (as `required = true` does for one [[worker]]).")
    ] = False,
    failed: Annotated[
        bool, typer.Option("--failed", help="Run only the shards that failed, timed out or "
                           "errored in the latest run (or --run).")
    ] = False,
    run_id: Annotated[
        str | None, typer.Option("--run", metavar="RUN_ID", help="The run --failed reads.",
                                 autocompletion=_complete_runs)
    ] = None,
    keep_failed: Annotated[
        bool, typer.Option("--keep-failed", help="Leave the stopped containers of failed "
                           "shards, to look inside; `shardrun clean` removes them.")
    ] = False,
    junit_out: Annotated[
        Path | None, typer.Option("--junit", metavar="PATH", help="Also write junit.xml here.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", metavar="PATH", help="Also write report.json here.")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", metavar="PATH", help="Also write report.html here.")
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Once a shard fails its tests, start no "
                           "queued shard (they are SKIPPED); running ones finish.")
    ] = False,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build the image once, run the shards, print a summary; exit 0 if all passed."""
    import anyio

    from shardrun import config as config_mod
    from shardrun import report, ui, workflow

    cfg = _load(config, build_arg, builder)
    shards = tuple(_planned(cfg, shard))
    replan = None
    if failed or run_id:
        shards = _only_failed(cfg, shards, run_id)
    elif any(spec.per_slot for spec in cfg.shards):  # count = "slots": once slots are known
        replan = functools.partial(_planned, cfg, shard)
    request = workflow.RunRequest(
        config=cfg, shards=shards, jobs=jobs, retries=retries,
        workers=tuple(config_mod.parse_worker_option(w) for w in worker or ()),
        require_all_workers=require_all_workers, fail_fast=fail_fast, keep_failed=keep_failed,
        replan=replan,
        secrets=workflow.read_secrets(shards, os.environ),
    )
    view, console = _view(plain)
    leftovers = (f"containers labelled shardrun.run={request.run_id} may be left on the "
                 "workers; its watchdog, or the next shardrun command there, removes them")

    with view:
        summary = anyio.run(_drive, view, functools.partial(workflow.run, request), leftovers)
    run_dir = request.state_dir / "runs" / summary.run_id
    reports = [run_dir / name for name in report.REPORTS]
    for name, wanted in (("junit.xml", junit_out), ("report.json", json_out),
                         ("report.html", html_out)):
        if wanted is not None:
            reports.append(_copy_report(run_dir / name, wanted))
    ui.print_summary(console, summary, reports)
    if os.environ.get("GITHUB_ACTIONS") == "true" and (notes := report.github_annotations(summary)):
        print("\n".join(notes), flush=True)
    if summary.interrupted:
        print("shardrun: interrupted", file=sys.stderr)
    raise typer.Exit(summary.exit_code)


@app.command()
@handles_errors
def build(
    config: ConfigOpt = None,
    build_arg: BuildArgOpt = None,
    builder: BuilderOpt = None,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build the image and save its tarball; print the image ID and the tarball path."""
    import anyio

    from shardrun import workflow

    cfg = _load(config, build_arg, builder)
    view, _ = _view(plain)
    workflow.make_state_dirs(cfg.root / ".shardrun")

    async def work(emit, interrupt):
        async with workflow.cancelled_by(interrupt):
            builder = await workflow.connect_builder(cfg)
            image_id = await workflow.build_image(cfg, builder, emit)
            return image_id, await workflow.save_artifact(cfg, builder, image_id, emit)
        raise Interrupted

    with view:
        image_id, saved = anyio.run(_drive, view, work)
    print(image_id)
    print(saved.path)


@app.command()
@handles_errors
def workers(
    config: ConfigOpt = None, worker: WorkerOpt = None, debug: DebugOpt = False
) -> None:
    """List every worker: reachable or not, engine version, CPUs, slots, has the image."""
    import anyio
    from rich.console import Console

    from shardrun import artifact, ui, workflow
    from shardrun import config as config_mod

    cfg = _load(config, None)
    request = workflow.RunRequest(
        config=cfg, shards=(),
        workers=tuple(config_mod.parse_worker_option(w) for w in worker or ()),
    )
    image_id = artifact.latest_image_id(request.state_dir)
    resolved = workflow.resolve_workers(request)  # loads the SSH transport if one needs it
    from shardrun import inventory

    rows = anyio.run(inventory.survey, resolved, image_id)
    console = Console(highlight=False) if sys.stdout.isatty() else _plain_console()
    console.print(ui.workers_table(rows, image_id))
    if not any(row.reachable for row in rows):
        raise typer.Exit(4)


@app.command()
@handles_errors
def repro(
    name: Annotated[
        str, typer.Argument(metavar="SHARD", help="The shard to run, as `shardrun list` names it.",
                            autocompletion=_complete_shards)
    ],
    shell: Annotated[
        bool, typer.Option("--shell", help="Start sh in the shard's container instead.")
    ] = False,
    run_id: Annotated[
        str | None, typer.Option("--run", metavar="RUN_ID", help="Reproduce the shard as it "
                                 "ran in this run (default: the latest run where it ran).",
                                 autocompletion=_complete_runs)
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Build from the current sources instead of using "
                           "the image that ran.")
    ] = False,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the `docker run` command line and run nothing.")
    ] = False,
    worker: Annotated[
        str | None, typer.Option("--worker", "-w", metavar="WORKER", help="Run it on this "
                                 "worker: a name from the run, a docker context or a URL.")
    ] = None,
    config: ConfigOpt = None,
    build_arg: BuildArgOpt = None,
    builder: BuilderOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run one shard again, exactly as it ran (its image, command, env, mounts), attached
    to this terminal; exit with its exit code."""
    from shardrun import repro as repro_mod

    cfg = _load(config, build_arg, builder)
    recorded = "--fresh" if fresh else repro_mod.find_recorded(
        cfg.root / ".shardrun", name, run_id)
    if isinstance(recorded, repro_mod.Recorded):
        target = recorded.shard
        image_ref, engine_worker = _recorded_image(recorded, worker)
        if image_ref is None:
            print(f"shardrun: the image of run {recorded.run_id} ({recorded.image_id[:19]}) is "
                  f"gone from {engine_worker.name}; building from the current sources",
                  file=sys.stderr)
            engine_worker.engine.close()
            recorded = "gone"
    if not isinstance(recorded, repro_mod.Recorded):
        if recorded != "--fresh":
            print(f"shardrun: {recorded}; building from the current sources", file=sys.stderr)
        from shardrun import plan

        target = repro_mod.pick(plan.expand(cfg), name)
        if not print_only:
            from shardrun import workflow

            workflow.read_secrets((target,), os.environ)  # a usage error: before the build
        if worker:
            cfg = dataclasses.replace(cfg, image=dataclasses.replace(cfg.image, builder=worker))
        engine_worker, image_ref = _build_for_repro(cfg)
    else:
        print(f"shardrun: {name} as it ran in run {recorded.run_id} "
              f"(image {recorded.image_id[:19]}, on {engine_worker.name})", file=sys.stderr)
    code = _run_repro(cfg, target, engine_worker, image_ref, shell, print_only)
    raise typer.Exit(code)


def _recorded_image(recorded, worker: str | None):
    """What the chosen engine knows the recorded image by (None: gone), and that engine:
    `worker` (a name from the run, a context or a URL), else the current one."""
    from shardrun import config as config_mod
    from shardrun import workflow
    from shardrun.engine import resolve

    url = recorded.worker_url if worker and worker == recorded.worker else None
    spec = config_mod.parse_worker_option(url or worker or "default")
    endpoint = resolve(spec.context or spec.host)
    engine_worker = workflow.connect_and_reap(spec, endpoint, worker or endpoint.name)
    return engine_worker.engine.find_image(recorded.image_id, None), engine_worker


def _build_for_repro(cfg):
    import anyio

    from shardrun import ui, workflow

    async def work(emit, interrupt):
        async with workflow.cancelled_by(interrupt):
            builder = await workflow.connect_builder(cfg)
            return builder, await workflow.build_image(cfg, builder, emit)
        raise Interrupted

    view = ui.QuietView(sys.stderr)
    with view:
        return anyio.run(_drive, view, work)


def _run_repro(cfg, target, engine_worker, image_ref: str, shell: bool, print_only: bool) -> int:
    """Print the `docker run` line; unless `print_only`, run it attached and return the
    shard's exit code (130 if interrupted)."""
    import shutil

    from shardrun import owner, plan, reap, workflow
    from shardrun import repro as repro_mod
    from shardrun.watchdog import Watchdog

    run_id = f"repro-{workflow.new_run_id()}"
    labels = {owner.LABEL_PROJECT: cfg.project, owner.LABEL_SHARD: target.name,
              owner.LABEL_RUN: run_id}
    if print_only:  # a line for a shell later: no owner (this process), no terminal
        argv = repro_mod.docker_run_argv(plan.for_worker(target, ()), image_ref, labels,
                                         host=engine_worker.endpoint.url, shell=shell)
        print(repro_mod.printable(argv))
        engine_worker.engine.close()
        return 0
    secrets = workflow.read_secrets((target,), os.environ)
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise ConfigError("repro runs the shard with the docker CLI, which is not on PATH; "
                          "install it, or use `shardrun run --shard NAME`")
    labels |= {**owner.me().labels(), **owner.deadline_label(target.timeout)}
    argv = repro_mod.docker_run_argv(
        plan.for_worker(target, ()), image_ref, labels, host=engine_worker.endpoint.url,
        interactive=sys.stdin.isatty() and sys.stdout.isatty(), shell=shell,
    )
    print(f"$ {repro_mod.printable(argv)}", file=sys.stderr, flush=True)
    env = {**os.environ, **secrets}
    watchdog = Watchdog(run_id, [engine_worker.target])
    engine = engine_worker.engine
    code = repro_mod.run_attached([docker_cli, *argv[1:]], cfg.root, env,
                                  lambda: reap.remove_run(engine, run_id))
    reap.remove_run(engine, run_id)  # `--rm` misses a container whose CLI was killed
    watchdog.release()
    if code is None:
        print("shardrun: interrupted; the container was removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not shell:
        verdict = "passed" if code == 0 else f"failed (exit {code})"
        print(f"shardrun: {target.name} {verdict}", file=sys.stderr)
    return code


@app.command()
@handles_errors
def runs(config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """List past runs, newest first: ID, when, image, counts, exit code."""
    from shardrun import housekeeping

    cfg = _load(config, None)
    rows = housekeeping.past_runs(cfg.root / ".shardrun")
    if not rows:
        print("no runs recorded yet; `shardrun run` makes one")
        return
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.started)) if row.started else "?"
        image = row.image.removeprefix("sha256:")[:12] or "-"
        code = "-" if row.exit_code is None else row.exit_code
        print(f"{row.run_id}  {when}  image {image}  exit {code}  {row.counts}")


@app.command()
@handles_errors
def show(
    run_or_shard: Annotated[str | None, typer.Argument(
        metavar="[RUN]", autocompletion=lambda ctx, incomplete: _complete_runs(ctx, incomplete)
        + _complete_shards(ctx, incomplete))] = None,
    shard: Annotated[str | None, typer.Argument(metavar="[SHARD]",
                                                autocompletion=_complete_shards)] = None,
    config: ConfigOpt = None, debug: DebugOpt = False,
) -> None:
    """Print a run's summary again (default: the latest), or one shard's log."""
    from shardrun import history, housekeeping

    cfg = _load(config, None)
    state = cfg.root / ".shardrun"
    run_id, shard_name = housekeeping.resolve_show(state, run_or_shard, shard)
    past = history.load(state, run_id)
    if shard_name:
        log = housekeeping.shard_log(past, shard_name)
        try:
            with open(log, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
        except OSError as exc:
            raise ConfigError(f"{log}: {exc.strerror}; the run's folder may have been cleaned") from None
        return
    summary_md = state / "runs" / past.run_id / "summary.md"
    try:
        print(summary_md.read_text(), end="")
    except OSError:
        raise ConfigError(f"{summary_md} is missing; `shardrun runs` lists the runs") from None


@app.command()
@handles_errors
def clean(
    older_than: Annotated[
        str, typer.Option("--older-than", metavar="AGE", help="Remove runs and cache files "
                          "unused for this long (e.g. 7d, 12h).")
    ] = "7d",
    containers: Annotated[
        bool, typer.Option("--containers", help="Also remove every container with shardrun's "
                           "labels on the workers, of any project and in any state.")
    ] = False,
    config: ConfigOpt = None, worker: WorkerOpt = None, debug: DebugOpt = False,
) -> None:
    """Remove old runs and unused cache files, and the containers kept by --keep-failed."""
    import anyio

    from shardrun import config as config_mod
    from shardrun import housekeeping, workflow

    cfg = _load(config, None)
    age = config_mod.parse_duration(older_than, "--older-than")
    done = housekeeping.clean_files(cfg.root / ".shardrun", age)
    print(f"removed {done.runs} runs and {done.cache_files} cache files "
          f"({done.freed / 1e6:.1f} MB)")
    request = workflow.RunRequest(
        config=cfg, shards=(),
        workers=tuple(config_mod.parse_worker_option(w) for w in worker or ()),
    )
    for name, count, error in anyio.run(workflow.remove_containers,
                                        workflow.resolve_workers(request), not containers):
        what = "containers with shardrun's labels" if containers else "kept containers"
        print(f"{name}: {error}" if error else f"{name}: removed {count} {what}")


@app.command("list")
@handles_errors
def list_shards(
    config: ConfigOpt = None, shard: ShardOpt = None, debug: DebugOpt = False
) -> None:
    """Print the expanded shards, in the order they would start, with their commands."""
    import shlex

    from shardrun import split, timings

    cfg = _load(config, None)
    shards = _planned(cfg, shard, os.cpu_count() or 1)
    width = max(len(s.name) for s in shards)
    known = timings.load_files(cfg.timings_path)
    groups = [s.files for s in shards if s.files]
    for s in shards:
        if s.files:  # a split group: its files, not the long command line
            expected = sum(split.estimates(s.files, known).values())
            shown = " ".join(s.files[:3]) + (f" ... ({len(s.files)} files)"
                                             if len(s.files) > 3 else "")
            print(f"{s.name:<{width}}  ~{expected:.1f}s  {shown}")
            continue
        command = shlex.join(s.command) if s.command is not None else "(image CMD)"
        print(f"{s.name:<{width}}  {command}")
    if groups:
        every = [f for group in groups for f in group]
        slots = os.cpu_count() or 1
        span = split.makespan(groups, split.estimates(every, known), slots)
        print(f"split: {len(every)} files in {len(groups)} groups, expected makespan "
              f"~{span:.1f}s on {slots} slots (this machine's CPUs)")


def main() -> None:
    from shardrun.lazy_ssh import defer_ssh_transport

    defer_ssh_transport()
    try:
        app(prog_name="shardrun")  # also under `python -m shardrun`: completion keys on it
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    _exit(code)


def _exit(code: int) -> None:
    """Exit at once. A thread abandoned on an engine that stopped answering (a container
    wait on a host cut off from the network) cannot be interrupted, and the interpreter
    would wait for it forever; tearing down the SDK's objects also costs ~0.2 s a run.
    A tarball an abandoned thread was still writing (an interrupted save) goes first;
    if the cache's files were never imported, this process wrote none."""
    cache_files = sys.modules.get("shardrun.cache_files")
    if cache_files is not None:
        cache_files.discard_temp_files()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
