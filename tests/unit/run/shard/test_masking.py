"""shardrun.masking: secrets hidden from output however the reads split it."""

from __future__ import annotations

import pytest

from shardrun.run.shard.masking import Masker


def stream(secrets: list[str], chunks: list[bytes]) -> bytes:
    masker = Masker(secrets)
    return b"".join(masker.feed(c) for c in chunks) + masker.flush()


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_one_secret_is_replaced():
    assert stream(["hunter2"], [b"password=hunter2\n"]) == b"password=***\n"


def test_several_secrets_are_replaced():
    data = b"user=alice token=t0k3n key=k3y\n"
    assert stream(["t0k3n", "k3y", "alice"], [data]) == b"user=*** token=*** key=***\n"


def test_repeated_and_adjacent_occurrences_are_all_replaced():
    assert stream(["s3cr3t"], [b"s3cr3t s3cr3ts3cr3t|s3cr3t"]) == b"*** ******|***"


@pytest.mark.parametrize(
    "chunks",
    [
        [b"before s3cr3t", b" after"],  # ends a read
        [b"before ", b"s3cr3t after"],  # starts a read
        [b"s3cr3t", b"s3cr3t"],  # is a whole read, twice
    ],
)
def test_secret_at_a_read_boundary(chunks: list[bytes]):
    assert stream(["s3cr3t"], chunks) == b"".join(chunks).replace(b"s3cr3t", b"***")


def test_secret_split_across_two_reads():
    assert stream(["s3cr3t"], [b"token: s3c", b"r3t done"]) == b"token: *** done"


def test_secret_split_across_many_reads():
    assert stream(["s3cr3t"], [b"a s", b"3c", b"r", b"3t b"]) == b"a *** b"


def test_secret_split_into_one_byte_reads():
    data = b"x=s3cr3t, y=s3cr3t!"
    assert stream(["s3cr3t"], bytewise(data)) == b"x=***, y=***!"


def test_empty_reads_change_nothing():
    assert stream(["s3cr3t"], [b"", b"s3c", b"", b"r3t", b""]) == b"***"


def test_a_secret_that_is_a_prefix_of_another_masks_the_longer_whole():
    secrets = ["abc", "abcdef"]
    assert stream(secrets, [b"abcdef abc abcde"]) == b"*** *** ***de"
    assert stream(secrets, bytewise(b"abcdef abc abcde")) == b"*** *** ***de"


def test_a_complete_secret_waits_while_a_longer_one_may_follow():
    masker = Masker(["ab", "abcd"])
    assert masker.feed(b"xab") == b"x"
    assert masker.feed(b"c") == b""
    assert masker.feed(b"d!") == b"***!"
    assert masker.feed(b"abc") == b""
    assert masker.feed(b"x") == b"***cx"


def test_a_secret_inside_another_is_hidden_with_it():
    assert stream(["ok", "token"], [b"tok", b"en ok"]) == b"*** ***"


def test_overlapping_secrets_mask_the_leftmost():
    assert stream(["abc", "bcd"], [b"abcd"]) == b"***d"
    assert stream(["abc", "bcd"], bytewise(b"abcd")) == b"***d"


def test_regex_characters_in_a_secret_are_literal():
    assert stream(["a.b*c"], [b"aXbc a.b*c"]) == b"aXbc ***"


def test_a_possible_start_is_held_back_then_released_when_it_is_not_a_secret():
    masker = Masker(["secret"])
    assert masker.feed(b"log: sec") == b"log: "
    assert masker.feed(b"ond\n") == b"second\n"


def test_a_possible_start_at_the_end_of_the_stream_comes_out_on_flush():
    masker = Masker(["secret"])
    assert masker.feed(b"log: secre") == b"log: "
    assert masker.flush() == b"secre"
    assert masker.flush() == b""


def test_at_most_one_byte_less_than_the_longest_secret_is_held_back():
    masker = Masker(["abc", "aaaaaa"])
    assert masker.feed(b"x" * 10 + b"aaaaa") == b"x" * 10
    assert masker.feed(b"b") == b"aaaa"  # "ab" may still become "abc"
    assert masker.feed(b"d") == b"abd"


def test_a_read_that_cannot_start_a_secret_comes_out_whole():
    masker = Masker(["s3cr3t"])
    assert masker.feed(b"plain output\n") == b"plain output\n"
    assert masker.flush() == b""


def test_no_secrets_is_a_pass_through():
    masker = Masker([])
    chunk = b"anything at all"
    assert not masker
    assert masker.feed(chunk) is chunk
    assert masker.flush() == b""
    assert masker.mask_text("text") == "text"


def test_empty_values_are_ignored():
    masker = Masker(["", ""])
    assert not masker
    assert masker.feed(b"abc") == b"abc"
    assert Masker(["", "k"])


def test_unicode_secrets_match_their_utf8_bytes_split_anywhere():
    secret = "pässwörd€"
    data = f"pw={secret}!".encode()
    assert stream([secret], [data]) == b"pw=***!"
    assert stream([secret], bytewise(data)) == b"pw=***!"


def test_mask_text():
    masker = Masker(["hunter2", "hunter", "ключ"])
    assert masker.mask_text("login hunter2, then hunter3; ключ") == "login ***, then ***3; ***"
    assert masker.mask_text("nothing here") == "nothing here"


def test_repr_does_not_show_the_secrets():
    assert "hunter2" not in repr(Masker(["hunter2"]))
