"""state/foreign's JSON reader over random documents (hypothesis: a host test, since
tests/unit runs inside the test image, which has no hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from shardrun.state import foreign
from shardrun.state.foreign import Refused


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=40,
    )
)
def test_parse_json_is_json_or_one_refusal(value: object) -> None:
    try:
        text = json.dumps(value)
    except ValueError:
        return
    try:
        assert foreign.parse_json(text) == json.loads(text)
    except Refused as exc:
        assert "\n" not in str(exc)
