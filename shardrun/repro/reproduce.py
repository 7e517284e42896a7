"""`shardrun repro SHARD`: one shard as a plain `docker run` the developer can rerun.

The shard is found as it ran (report.json records its options and image), the command is
printed, then run attached to the terminal through the docker CLI (docker_run.py), so a
failing shard can be reproduced, and poked at with `--shell`, exactly as it ran. Exactly
inside its container: what reaches outside it (mounts, the Docker socket) is this
machine's config's, since a report may come from anywhere (`--run FOLDER`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shardrun.cleanup import reap
from shardrun.cleanup.watchdog import Watchdog
from shardrun.config.spec import Config
from shardrun.config.workers import parse_worker_option
from shardrun.distribute.artifact import image_file
from shardrun.distribute.artifact.tarball import OnDemand
from shardrun.distribute.deliver import deliver
from shardrun.distribute.worker_facts import WorkerFacts
from shardrun.engine.endpoints import resolve
from shardrun.model import owner
from shardrun.model.errors import EXIT_INTERRUPTED, ConfigError
from shardrun.model.shard import Shard
from shardrun.model.sizes import transfer_text
from shardrun.plan import assign
from shardrun.plan.expand import expand, for_worker
from shardrun.repro.docker_run import docker_run_argv, printable, run_attached
from shardrun.repro.recorded import Recorded, find_recorded, pick
from shardrun.run.connect import connect_and_reap
from shardrun.run.request import Connect, new_run_id, read_secrets, real_engine
from shardrun.run.shard.masking import Masker
from shardrun.run.stages import Links
from shardrun.run.workers import Worker
from shardrun.state import files, layout
from shardrun.state.shard_record import HOST_OPTIONS, on_this_host


@dataclass(frozen=True)
class ReproRequest:
    config: Config
    name: str  # the shard, as `shardrun list` names it
    run_id: str | None = None  # reproduce it as it ran there; None: its latest run
    fresh: bool = False  # build from the current sources instead of the image that ran
    print_only: bool = False  # print the `docker run` line, run nothing
    shell: bool = False  # sh in the shard's container instead of its command
    worker: str | None = None  # a worker name from the run, a docker context or a URL
    # The image file a CI build job wrote (`build --output`): loaded where the image is
    # missing, so a shard that failed on CI is reproduced here from the CI's own image.
    image: Path | None = None
    connect: Connect = field(default=real_engine, repr=False)  # the engine factory (tests swap it)


# Builds the image for a repro through the CLI's quiet view: (the builder, the image ID).
BuildForRepro = Callable[[Config, Connect], tuple[Worker, str]]


def reproduce(request: ReproRequest, build_image: BuildForRepro) -> int:
    """Run one shard again, exactly as it ran (its image, command, env, mounts), attached
    to this terminal: its exit code. Without a record of it, or once its image is gone,
    the image is built from the current sources and the shard taken from the config."""
    cfg = request.config
    if request.fresh and request.image:
        raise ConfigError("--fresh builds the image, --image gives it: use one of them")
    recorded = (
        "--fresh"
        if request.fresh
        else find_recorded(layout.state_dir(cfg.root), request.name, request.run_id)
    )
    if isinstance(recorded, Recorded):
        recorded = _on_this_host(recorded, cfg, request.name)
        image_ref, engine_worker = _recorded_image(recorded, request.worker, request.connect)
        if image_ref is None and request.image is not None:
            image_ref = _load_file(cfg, request.image, engine_worker, recorded)
        if image_ref is not None:
            print(
                f"shardrun: {request.name} as it ran in run {recorded.run_id} "
                f"(image {recorded.image_id[:19]}, on {engine_worker.name})",
                file=sys.stderr,
            )
            return _run(cfg, recorded.shard, engine_worker, image_ref, request)
        print(
            f"shardrun: the image of run {recorded.run_id} ({recorded.image_id[:19]}) is "
            f"gone from {engine_worker.name}; building from the current sources",
            file=sys.stderr,
        )
        engine_worker.engine.close()
    elif recorded != "--fresh":
        print(f"shardrun: {recorded}; building from the current sources", file=sys.stderr)
    target = pick(expand(cfg), request.name)
    if not request.print_only:
        read_secrets((target,), os.environ)  # a usage error: before the build
    if request.image is not None:  # no record of it: the config's shard, on the file's image
        engine_worker = _engine(request.worker, connect=request.connect)
        return _run(
            cfg, target, engine_worker, _load_file(cfg, request.image, engine_worker), request
        )
    if request.worker:
        cfg = dataclasses.replace(cfg, image=dataclasses.replace(cfg.image, builder=request.worker))
    engine_worker, image_ref = build_image(cfg, request.connect)
    return _run(cfg, target, engine_worker, image_ref, request)


def _on_this_host(recorded: Recorded, cfg: Config, name: str) -> Recorded:
    """The recorded shard with what reaches outside its container (mounts, the Docker
    socket, security options, network) from this machine's config: a report is a file
    anyone who can edit a CI artifact can write (issue 25)."""
    config = assign.shard_named(cfg, name)
    shard = on_this_host(recorded.shard, config)
    if any(getattr(shard, key) != getattr(recorded.shard, key) for key in HOST_OPTIONS):
        taken = "as shards.toml has them" if config is not None else "none (not in shards.toml)"
        print(
            f"shardrun: {shard.name}'s volumes, Docker socket, security-opt and network: "
            f"{taken}, not as run {recorded.run_id} recorded them",
            file=sys.stderr,
        )
    return dataclasses.replace(recorded, shard=shard)


def _recorded_image(
    recorded: Recorded, worker: str | None, connect: Connect = real_engine
) -> tuple[str | None, Worker]:
    """What the chosen engine knows the recorded image by (None: gone), and that engine:
    `worker` (a name from the run, a context or a URL), else the current one."""
    url = recorded.worker_url if worker and worker == recorded.worker else None
    engine_worker = _engine(url or worker, worker, connect)
    return engine_worker.engine.find_image(recorded.image_id, None), engine_worker


def _engine(where: str | None, name: str | None = None, connect: Connect = real_engine) -> Worker:
    """The engine at `where` (a docker context or a URL; None: the current context)."""
    spec = parse_worker_option(where or "default")
    endpoint = resolve(spec.context or spec.host)
    return connect_and_reap(spec, endpoint, name or where or endpoint.name, engines=connect)


def _load_file(
    cfg: Config, path: Path, engine_worker: Worker, recorded: Recorded | None = None
) -> str:
    """The image of `path`, loaded into the engine where it lacks it (only the missing
    layers where it holds the lower ones, as a run's load): what to run it by."""
    state = layout.state_dir(cfg.root)
    files.make_state_dirs(state)
    cache = layout.cache(state)
    image_id, _, _ = image_file.import_into_cache(path, cache)
    if recorded is not None and image_id != recorded.image_id:
        engine_worker.engine.close()
        raise ConfigError(
            f"--image {path} holds image {image_id[:19]}, but {recorded.shard.name} ran in run "
            f"{recorded.run_id} on {recorded.image_id[:19]}; give that run's image file"
        )
    image = OnDemand(None, image_id, cache, lambda saved: None)
    links = Links([engine_worker], WorkerFacts(layout.workers_file(state)), lambda event: None)
    try:
        delivered = deliver(
            engine_worker.engine,
            links.link(engine_worker),
            image,
            cfg.project,
            engine_worker.containerd_store,
        )
    finally:
        links.close()
    print(
        f"shardrun: loaded {path.name} into {engine_worker.name} ({delivered.mode}, "
        f"{transfer_text(delivered.sent, delivered.codec, delivered.wire)} sent)",
        file=sys.stderr,
    )
    return delivered.ref


def _run(
    cfg: Config, target: Shard, engine_worker: Worker, image_ref: str, request: ReproRequest
) -> int:
    """Print the `docker run` line; unless `print_only`, run it attached and return the
    shard's exit code (130 if interrupted)."""
    run_id = f"repro-{new_run_id()}"
    labels = {
        owner.LABEL_PROJECT: cfg.project,
        owner.LABEL_SHARD: target.name,
        owner.LABEL_RUN: run_id,
    }
    host = engine_worker.endpoint.url
    if request.print_only:  # a line for a shell later: no owner (this process), no terminal
        argv = docker_run_argv(
            for_worker(target, ()), image_ref, labels, host=host, shell=request.shell
        )
        # The line names each secret (`--env NAME`: the CLI reads its value from the
        # environment), so no value is in it; unless the config also spells one out.
        known = {name: os.environ[name] for name in target.secret_env if name in os.environ}
        print(Masker(known.values()).mask_text(printable(argv)))
        engine_worker.engine.close()
        return 0
    secrets = read_secrets((target,), os.environ)
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise ConfigError(
            "repro runs the shard with the docker CLI, which is not on PATH; "
            "install it, or use `shardrun run --shard NAME`"
        )
    labels |= {**owner.me().labels(), **owner.deadline_label(target.timeout)}
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    argv = docker_run_argv(
        for_worker(target, ()),
        image_ref,
        labels,
        host=host,
        interactive=interactive,
        shell=request.shell,
    )
    masker = Masker(secrets.values())
    print(f"$ {masker.mask_text(printable(argv))}", file=sys.stderr, flush=True)
    watchdog = Watchdog(run_id, [engine_worker.target])
    engine = engine_worker.engine
    code = run_attached(
        [docker_cli, *argv[1:]],
        cfg.root,
        {**os.environ, **secrets},
        lambda: reap.remove_run(engine, run_id),
        secrets.values(),  # what the shard prints is masked, as in a run's log
        tty=interactive,
    )
    reap.remove_run(engine, run_id)  # `--rm` misses a container whose CLI was killed
    watchdog.release()
    if code is None:
        print("shardrun: interrupted; the container was removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not request.shell:
        verdict = "passed" if code == 0 else f"failed (exit {code})"
        print(f"shardrun: {target.name} {verdict}", file=sys.stderr)
    return code
