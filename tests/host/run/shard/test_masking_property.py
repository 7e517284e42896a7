"""shardrun.masking under random data, secrets and splits into reads (hypothesis).

The reference masks per position, the obvious way, so it shares no code with the Masker:
at each position the longest secret that starts there is replaced, else one byte is kept.
"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from shardrun.run.shard.masking import Masker

# 1-, 2- and 3-byte UTF-8 characters, few of them so that secrets overlap and nest. No "*":
# the mark "***" can spell such a secret by coincidence (with secrets "b" and "a*", "ab"
# becomes "a***"), which would fail the "no secret in the output" check.
ALPHABET = "ab\u00e9\u20ac"

PROPERTY = settings(max_examples=500, deadline=None)  # a busy host must not fail a correct example


def reference_steps(data: bytes, secrets: list[str]) -> list[tuple[int, bytes]]:
    """(input bytes consumed, output bytes) for each step of the per-position masking."""
    values = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
    steps, i = [], 0
    while i < len(data):
        hit = next((v for v in values if data.startswith(v, i)), None)
        steps.append((len(hit), b"***") if hit else (1, data[i : i + 1]))
        i += steps[-1][0]
    return steps


def reference(data: bytes, secrets: list[str]) -> bytes:
    return b"".join(out for _, out in reference_steps(data, secrets))


def consumed_by(output: bytes, data: bytes, secrets: list[str]) -> int:
    """How much of `data` the reference had consumed when it had written `output`."""
    consumed, written = 0, 0
    for taken, out in reference_steps(data, secrets):
        if written == len(output):
            break
        consumed, written = consumed + taken, written + len(out)
    assert written == len(output)
    return consumed


@st.composite
def cases(draw) -> tuple[list[str], bytes, list[bytes]]:
    secrets = draw(st.lists(st.text(ALPHABET, max_size=6), max_size=4))
    pieces = [s.encode() for s in secrets if s] + [
        b"a",
        b"b",
        b"*",
        "\u00e9".encode()[:1],
        "\u20ac".encode()[1:],
    ]
    data = b"".join(
        draw(st.lists(st.one_of(st.sampled_from(pieces), st.binary(max_size=4)), max_size=30))
    )
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return secrets, data, chunks


@PROPERTY
@given(cases())
def test_streaming_equals_masking_the_whole_data_and_hides_every_secret(case):
    secrets, data, chunks = case
    masker = Masker(secrets)
    out = b"".join(masker.feed(c) for c in chunks) + masker.flush()
    assert out == reference(data, secrets)
    for secret in filter(None, secrets):
        assert secret.encode() not in out


@PROPERTY
@given(cases())
def test_after_each_read_the_output_is_final_and_lags_less_than_the_longest_secret(case):
    secrets, _data, chunks = case
    longest = max((len(s.encode()) for s in secrets), default=0)
    masker, out, seen = Masker(secrets), b"", b""
    for chunk in chunks:
        out, seen = out + masker.feed(chunk), seen + chunk
        # Ending the stream here must give the whole masked data so far.
        assert out + copy.copy(masker).flush() == reference(seen, secrets)
        assert consumed_by(out, seen, secrets) >= len(seen) - max(longest - 1, 0)


@st.composite
def texts(draw) -> tuple[list[str], str]:
    secrets = draw(st.lists(st.text(ALPHABET, max_size=6), max_size=4))
    pieces = [s for s in secrets if s] + list(ALPHABET + "x*")
    return secrets, "".join(draw(st.lists(st.sampled_from(pieces), max_size=30)))


@PROPERTY
@given(texts())
def test_mask_text_equals_masking_the_utf8_bytes(case):
    secrets, text = case
    assert Masker(secrets).mask_text(text).encode() == reference(text.encode(), secrets)
