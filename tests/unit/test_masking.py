"""Secret masking of what leaves a worker."""

from __future__ import annotations

from faena.worker.masking import MASK, SecretMasker, StreamMasker, secret_environment


def test_every_secret_is_masked_in_one_pass() -> None:
    masker = SecretMasker(["hunter22", "s3cr3t-value"])
    assert masker.mask("a hunter22 b s3cr3t-value c hunter22") == f"a {MASK} b {MASK} c {MASK}"


def test_overlapping_secrets_are_masked_whole() -> None:
    masker = SecretMasker(["abcdef", "defghi"])
    assert masker.mask("xabcdefghix") == f"x{MASK}x"


def test_short_values_are_not_treated_as_secrets() -> None:
    assert SecretMasker(["ab"]).mask("ab cd") == "ab cd"


def test_a_secret_split_across_two_chunks_is_masked() -> None:
    stream = StreamMasker(SecretMasker(["supersecret"]))
    first = stream.feed("token=super")
    second = stream.feed("secret done\n")
    assert "super" not in first
    assert first + second + stream.flush() == f"token={MASK} done\n"


def test_held_back_text_that_is_not_a_secret_comes_out_on_flush() -> None:
    stream = StreamMasker(SecretMasker(["supersecret"]))
    out = stream.feed("the end: sup")
    assert out == "the end: "
    assert stream.flush() == "sup"


def test_json_values_are_masked_everywhere() -> None:
    masker = SecretMasker(["hunter22"])
    value = {"a": ["x hunter22", 1], "hunter22": {"b": "hunter22"}}
    assert masker.mask_value(value) == {"a": [f"x {MASK}", 1], MASK: {"b": MASK}}


def test_secret_environment_picks_secret_names_and_named_ones() -> None:
    env = {"API_TOKEN": "tok-123456", "DB_PASSWORD": "pw-123456", "HOME": "/root", "X": "xval"}
    assert sorted(secret_environment(env, ["X"])) == ["pw-123456", "tok-123456", "xval"]
