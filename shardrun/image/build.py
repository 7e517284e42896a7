"""Build the test image once with BuildKit, through the Engine API.

The docker CLI here has no buildx plugin and docker-py's `APIClient.build` has no BuildKit
switch, so we POST the context ourselves to `/build?version=2` (docs/architecture.md,
"Libraries, and why").
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from shardrun.config.spec import ImageSpec
from shardrun.engine.api import Engine, EngineFacts
from shardrun.engine.context import context_archive
from shardrun.image import buildkit_trace
from shardrun.model.errors import BuildError, ConfigError, EngineRefused
from shardrun.model.events import BuildFinished, BuildLog, BuildStarted, BuildStep, Emit
from shardrun.state import layout

# Without a BuildKit session (which only the CLI can open) these features fail deep in the
# build with "no active session"; we say so up front.
_SESSION_ONLY = ("--mount=type=secret", "--mount=type=ssh")


def _check_session_features(spec: ImageSpec) -> None:
    text = spec.dockerfile.read_text(errors="replace")
    for feature in _SESSION_ONLY:
        if feature in text:
            raise ConfigError(
                f"{spec.dockerfile}: uses {feature}, which needs a BuildKit session that "
                "the Engine API build cannot open; use a build arg or a COPY instead"
            )


# BuildKit's inline cache metadata (a few hundred bytes of the image's config) lets an
# image be a later build's --cache-from on an engine that never built it. Only images that
# travel as files (`build --output`) carry it: dockerd 20.10 writes it anew on every build,
# fully cached or not, so an unchanged image would get a new ID each time, and every run
# would save it and send it to the workers again.
INLINE_CACHE = {"BUILDKIT_INLINE_CACHE": "1"}


def _params(
    spec: ImageSpec,
    dockerfile_name: str,
    labels: dict[str, str],
    cache_from: Sequence[str],
    inline_cache: bool,
) -> dict:
    params = {
        "version": "2",
        "dockerfile": dockerfile_name,
        "rm": "1",
        "forcerm": "1",
        "labels": json.dumps(labels),
    }
    if spec.tag:
        params["t"] = spec.tag
    if spec.target:
        params["target"] = spec.target
    build_args = {**INLINE_CACHE, **spec.build_args} if inline_cache else dict(spec.build_args)
    if build_args:
        params["buildargs"] = json.dumps(build_args)
    if cache_from:
        params["cachefrom"] = json.dumps(list(cache_from))
    return params


# moby/moby#47717: with the containerd image store, BuildKit fetches a context sent as the
# request body from a URL it cannot resolve, until 28.0 (moby/moby#49178).
_TAR_CONTEXT_FIXED = (28, 0)


def check_builder(name: str, version: str, containerd_store: bool) -> None:
    """BuildError, before anything is sent, for an engine that cannot build from a
    context sent over the API."""
    if containerd_store and EngineFacts(version, 1).major_minor < _TAR_CONTEXT_FIXED:
        raise BuildError(
            f"the builder {name} (Docker {version}) uses the containerd image store, whose "
            "builds from a context sent over the API fail before Docker 28.0 "
            "(moby/moby#47717); upgrade that engine to 28.0 or later, turn its "
            "containerd-snapshotter feature off, or build on another engine with "
            "--builder NAME or [image] builder"
        )


@dataclass(frozen=True)
class CacheSource:
    ref: str  # what the builder knows it by: an image ID or tag, or a registry reference
    shown: str  # how the user gave it: the file's name, or the reference


def build(
    engine: Engine,
    spec: ImageSpec,
    emit: Emit,
    labels: dict[str, str],
    cache_from: Sequence[CacheSource] = (),
    inline_cache: bool = False,
) -> str:
    """Build `spec`, emitting build events, and return the image ID; with `inline_cache`,
    an image that can be a cache source elsewhere. Blocking."""
    _check_session_features(spec)
    started = time.time()
    emit(BuildStarted(dockerfile=str(spec.dockerfile), context=str(spec.context)))
    progress = buildkit_trace.Progress()
    image_id = None
    body, dockerfile_name = context_archive(spec.context, spec.dockerfile, exclude=(layout.NAME,))
    with body:
        params = _params(spec, dockerfile_name, labels, [c.ref for c in cache_from], inline_cache)
        try:
            for message in engine.build(body, params):
                image_id = _handle(message, progress, emit) or image_id
        except EngineRefused as exc:  # the engine said no; a transport error stays exit 4
            raise BuildError(str(exc)) from exc
    if image_id is None:
        raise BuildError("the build stream ended without an image ID")
    steps = [v for v in progress.vertexes.values() if _is_dockerfile_step(v.name)]
    emit(
        BuildFinished(
            image_id=image_id,
            duration=time.time() - started,
            cached_steps=sum(v.cached for v in steps),
            total_steps=len(steps),
            cache_from=tuple(c.shown for c in cache_from),
        )
    )
    return image_id


_STEP = re.compile(r"^\[[^\]]*\d+/\d+\] (?!FROM )")


def _is_dockerfile_step(name: str) -> bool:
    """A Dockerfile instruction that can come from the cache ("[2/3] RUN ..."), not FROM,
    the context transfer or the export, which BuildKit never reports as cached."""
    return bool(_STEP.match(name))


def _handle(message: dict, progress: buildkit_trace.Progress, emit: Emit) -> str | None:
    if "errorDetail" in message or "error" in message:
        raise BuildError(_failure(message, progress))
    if message.get("id") == "moby.image.id":
        return message["aux"]["ID"]
    if message.get("id") == "moby.buildkit.trace":
        changes, lines = progress.update(buildkit_trace.decode(message["aux"]))
        for change in changes:
            emit(
                BuildStep(
                    digest=change.digest,
                    name=change.name,
                    state=change.state,
                    error=change.error or None,
                )
            )
        for name, line in lines:
            emit(BuildLog(name=name, line=line))
    return None


def _failure(message: dict, progress: buildkit_trace.Progress) -> str:
    error = (message.get("errorDetail") or {}).get("message") or message.get("error", "")
    failed = [v for v in progress.vertexes.values() if v.error]
    if not failed:
        return f"build failed: {error.strip()}"
    step = failed[-1]
    tail = progress.tail(step.digest, 20)
    text = f"build failed at step {step.name}: {step.error.strip() or error.strip()}"
    if tail:
        text += "\n" + "\n".join(f"  | {line}" for line in tail)
    return text
