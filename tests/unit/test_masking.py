"""Secret masking: every form of a secret, in whole texts and in chunked streams."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.platform.masking import MASK, MIN_SECRET_LENGTH, Masker, StreamMasker
from runner.platform.masking.forms import trie_regex as _trie_regex

PASSWORD = "s3cr3t/pa ss+word?!"  # len % 3 == 1: every base64 form is distinct
PEM = (
    "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\n"
    "BKcwggSjAgEAAoIBAQC7\n-----END KEY-----\n"
)


def masker_for(*values: str) -> Masker:
    masker = Masker()
    for value in values:
        assert masker.add("SECRET", value) is None
    return masker


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def urlsafe(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def test_whole_value_is_masked() -> None:
    masker = masker_for(PASSWORD)
    assert masker.mask(f"login with {PASSWORD} now") == f"login with {MASK} now"
    assert masker.mask(PASSWORD + PASSWORD) == MASK + MASK


def test_value_with_surrounding_whitespace_is_masked_stripped_too() -> None:
    masker = masker_for("  hunter22\n")
    assert masker.mask("pw=hunter22;") == f"pw={MASK};"


def test_each_line_of_a_multi_line_secret_is_masked() -> None:
    masker = masker_for(PEM)
    assert masker.mask("key:\n" + PEM) == "key:\n" + MASK
    assert masker.mask("line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n") == f"line: {MASK}\n"
    assert masker.mask("BKcwggSjAgEAAoIBAQC7") == MASK
    assert masker.mask("-----END KEY-----") == MASK


def test_short_lines_of_a_multi_line_secret_are_not_variants() -> None:
    masker = masker_for("{\n  longer-line: yes\n}\n")
    assert masker.mask("{ }") == "{ }"
    assert masker.mask("longer-line: yes") == MASK


BASE64_FORMS = [
    b64(PASSWORD.encode()),
    b64(PASSWORD.encode()).rstrip("="),
    urlsafe(PASSWORD.encode()),
    urlsafe(PASSWORD.encode()).rstrip("="),
    b64((PASSWORD + "\n").encode()),  # echo $SECRET | base64
    b64((PASSWORD + "\n").encode()).rstrip("="),
    urlsafe((PASSWORD + "\n").encode()),
    urlsafe((PASSWORD + "\n").encode()).rstrip("="),
]


@pytest.mark.parametrize("encoded", BASE64_FORMS)
def test_base64_forms_are_masked(encoded: str) -> None:
    masker = masker_for(PASSWORD)
    assert masker.mask(f"data:\n  password: {encoded}\n") == f"data:\n  password: {MASK}\n"


def test_base64_forms_differ_so_the_cases_are_meaningful() -> None:
    assert len(set(BASE64_FORMS)) == len(BASE64_FORMS)


@pytest.mark.parametrize("prefix", [b"", b"u:", b"user:", b'{"auths":{"r":{"auth":"me:'])
def test_base64_of_secret_inside_a_longer_blob_is_masked(prefix: bytes) -> None:
    masker = masker_for(PASSWORD)
    blob = b64(prefix + PASSWORD.encode() + b'"}}}')
    masked = masker.mask(blob)
    assert MASK in masked
    # What is left are the characters that also encode the neighbouring bytes.
    assert len(masked.replace(MASK, "")) <= len(blob) - len(PASSWORD) * 4 // 3 + 2


@pytest.mark.parametrize(
    "encoded",
    [
        quote(PASSWORD, safe=""),
        quote(PASSWORD),
        quote_plus(PASSWORD),
        quote_plus(PASSWORD, safe="/"),
    ],
)
def test_url_encoded_forms_are_masked(encoded: str) -> None:
    assert encoded != PASSWORD
    masker = masker_for(PASSWORD)
    assert masker.mask(f"https://minio/?key={encoded}&x=1") == f"https://minio/?key={MASK}&x=1"


def test_longest_variant_wins_at_a_position() -> None:
    masker = masker_for("abcd", "abcdefgh")
    assert masker.mask("xabcdefghx abcdx") == f"x{MASK}x {MASK}x"


def test_short_secret_is_not_masked_and_warning_does_not_contain_it() -> None:
    masker = Masker()
    warning = masker.add("MINIO_USER", "xq7")
    assert warning == "secret MINIO_USER is shorter than 4 characters and is not masked"
    assert "xq7" not in warning
    assert not masker
    assert masker.mask("user xq7") == "user xq7"


def test_short_after_stripping_counts_as_short() -> None:
    warning = Masker().add("TOKEN", "  ab \n")
    assert warning is not None and "ab" not in warning.replace("TOKEN", "")


@pytest.mark.parametrize("value", ["", " ", "\n", " \t\r\n "])
def test_empty_or_blank_secret_is_ignored_silently(value: str) -> None:
    masker = Masker()
    assert masker.add("EMPTY", value) is None
    assert not masker


def test_empty_masker_returns_text_unchanged() -> None:
    masker = Masker()
    text = "nothing secret " * 100
    assert masker.mask(text) is text
    assert not masker


def test_constructor_registers_secrets() -> None:
    masker = Masker(["alpha-secret", "xy"])
    assert masker
    assert masker.mask("alpha-secret xy") == f"{MASK} xy"


def test_add_after_mask_recompiles() -> None:
    masker = masker_for("first-secret")
    assert masker.mask("first-secret second-secret") == f"{MASK} second-secret"
    masker.add("B", "second-secret")
    assert masker.mask("first-secret second-secret") == f"{MASK} {MASK}"


def test_secret_with_undecodable_environment_bytes() -> None:
    raw = b"pass\xffword"
    value = raw.decode("utf-8", "surrogateescape")  # how os.environ hands it over
    masker = masker_for(value)
    assert masker.mask(b64(raw)) == MASK
    assert masker.mask(value) == MASK


def test_regex_metacharacters_are_literal() -> None:
    masker = masker_for("a.b*c(d)[e]")
    assert masker.mask("aXbbbc(d)[e] a.b*c(d)[e]") == f"aXbbbc(d)[e] {MASK}"


# -- properties -----------------------------------------------------------------------------

# A secret that contains no "*" can never be re-formed by the MASK text ("***") that replaces
# a neighbouring match, so the property below is exact: for ANY surrounding text, the
# secret (and each of its encodings) is absent from the output. Reason: an occurrence in the
# output lies wholly in a stretch of untouched input, every position of which the scanner
# visited, so the scanner would have matched it there.
secrets = st.text(min_size=MIN_SECRET_LENGTH, max_size=12).filter(
    lambda s: "*" not in s and len(s.strip()) >= MIN_SECRET_LENGTH
)


@settings(max_examples=300, deadline=None)
@given(secrets, st.text(max_size=20), st.text(max_size=20))
def test_masked_text_never_contains_the_secret(secret: str, prefix: str, suffix: str) -> None:
    masker = masker_for(secret)
    masked = masker.mask(prefix + secret + suffix)
    assert secret not in masked
    encoded = b64(secret.encode())
    assert encoded not in masker.mask(prefix + encoded + suffix)
    assert quote(secret, safe="") not in masker.mask(prefix + quote(secret, safe="") + suffix)


@settings(max_examples=200, deadline=None)
@given(secrets, st.text(max_size=20), st.booleans())
def test_finds_answers_whether_mask_changes_the_text(secret: str, text: str, embed: bool) -> None:
    masker = masker_for(secret)
    text = text + b64(secret.encode()) if embed else text
    assert masker.finds(text) is (masker.mask(text) != text)
    assert Masker().finds(text) is False


@settings(max_examples=200, deadline=None)
@given(secrets, st.text(alphabet="ab*\n ", max_size=12), st.text(alphabet="ab*\n ", max_size=12))
def test_masking_is_idempotent_for_star_free_secrets(secret: str, prefix: str, suffix: str) -> None:
    masker = masker_for(secret)
    once = masker.mask(prefix + secret + suffix)
    assert masker.mask(once) == once


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abc\n", min_size=1, max_size=6), min_size=1, max_size=8, unique=True
    ),
    st.text(alphabet="abc\n", max_size=30),
)
def test_trie_regex_matches_like_longest_first_alternation(words: list[str], text: str) -> None:
    naive = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))
    trie = re.compile(_trie_regex(sorted(words)))
    assert trie.sub("#", text) == naive.sub("#", text)


# -- streams --------------------------------------------------------------------------------


def run_stream(
    masker: Masker, chunks: list[str], max_pending: int = 64 * 1024
) -> tuple[str, list[str]]:
    """Feed chunks; return the whole output and what each call emitted."""
    stream = masker.stream(max_pending=max_pending)
    emitted = [stream.feed(chunk) for chunk in chunks]
    emitted.append(stream.flush())
    return "".join(emitted), emitted


def test_stream_emits_complete_lines_and_holds_the_partial_one() -> None:
    masker = masker_for(PASSWORD)
    stream = masker.stream()
    assert stream.feed("first line\nsecond ") == "first line\n"
    assert stream.feed("s3cr3t/pa") == ""
    assert stream.feed(" ss+word?! done\nthird") == f"second {MASK} done\n"
    assert stream.flush() == "third"
    assert stream.flush() == ""


def test_stream_without_secrets_passes_chunks_through() -> None:
    stream = Masker().stream()
    assert stream.feed("partial ") == "partial "
    assert stream.feed("line\n") == "line\n"


def test_stream_holds_back_a_possible_multi_line_secret() -> None:
    masker = masker_for("line one\nline two")
    stream = masker.stream()
    assert stream.feed("before it\nline one\n") == "before it\n"  # may start the secret
    assert stream.feed("line two\n") == f"{MASK}\n"


def test_stream_bounds_memory_without_newlines() -> None:
    masker = masker_for("needle-secret")
    stream = masker.stream(max_pending=100)
    out = stream.feed("x" * 95 + "needle-")
    assert out and set(out) == {"x"}
    held = stream.feed("secret" + "y" * 200)
    assert "needle" not in held and MASK in held
    assert len(held) > 150
    assert (out + held + stream.flush()).count(MASK) == 1


def test_stream_cut_never_splits_a_match() -> None:
    masker = masker_for("abcdefghij")
    text = "z" * 15 + "abcdefghij" + "z" * 20
    # A secret of 10 bytes spans at most 24 characters of hex (or base64), so the size rule
    # would emit all but the last 24: a cut at 21, inside the match at 15..25. The cut
    # moves back to the start of the match.
    total, parts = run_stream(masker, [text], max_pending=20)
    assert total == masker.mask(text)
    assert parts[0] == "z" * 15


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secrets,
    st.text(alphabet="ab\n x*", max_size=12),
    st.text(alphabet="ab\n x*", max_size=12),
    st.sampled_from(["plain", "base64", "url"]),
)
def test_stream_split_at_every_point_equals_mask(
    secret: str, prefix: str, suffix: str, form: str
) -> None:
    masker = masker_for(secret)
    shown = {"plain": secret, "base64": b64(secret.encode()), "url": quote_plus(secret)}[form]
    text = prefix + shown + "\n" + suffix + shown
    expected = masker.mask(text)
    for cut in range(len(text) + 1):
        total, _ = run_stream(masker, [text[:cut], text[cut:]])
        assert total == expected
        assert shown not in total


@settings(max_examples=100, deadline=None)
@given(
    st.text(alphabet="ab\n", min_size=4, max_size=10).filter(lambda s: len(s.strip()) >= 4),
    st.text(alphabet="ab\nc", max_size=40),
    st.lists(st.integers(0, 40), max_size=6),
    st.integers(1, 30),
)
def test_stream_random_chunks_and_small_limit_equal_mask(
    secret: str, noise: str, cuts: list[int], max_pending: int
) -> None:
    """Multi-line secrets, secrets made of newlines and tiny limits exercise every cut rule."""
    masker = masker_for(secret)
    text = noise[:7] + secret + noise[7:] + secret
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    total, _ = run_stream(masker, chunks, max_pending=max_pending)
    assert total == masker.mask(text)


def test_stream_is_a_stream_masker() -> None:
    assert isinstance(Masker().stream(), StreamMasker)


def naive_mask(variants: set[str], text: str) -> str:
    """The reference semantics: leftmost match, longest variant first."""
    ordered = sorted(variants, key=len, reverse=True)
    return re.sub("|".join(re.escape(v) for v in ordered), MASK, text)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(alphabet="ab\n=", min_size=4, max_size=12).filter(lambda s: len(s.strip()) >= 4),
        min_size=1,
        max_size=3,
    ),
    st.text(alphabet="ab\nYW=", max_size=40),
    st.integers(1, 8),
    st.integers(1, 20),
)
def test_long_variants_found_by_prefix_mask_like_the_reference(
    values: list[str], noise: str, prefix_length: int, max_pending: int
) -> None:
    """Variants longer than the prefix length take the prefix-then-compare path."""
    masker = Masker()
    masker._prefix_length = prefix_length
    for value in values:
        masker.add("S", value)
    text = noise[:9] + values[0] + noise[9:20] + b64(values[-1].encode()) + noise[20:]
    expected = naive_mask(masker._variants, text)
    assert masker.mask(text) == expected
    points = list(range(0, len(text), 5))
    chunks = [text[a:b] for a, b in zip(points, [*points[1:], len(text)], strict=True)]
    assert run_stream(masker, chunks, max_pending=max_pending)[0] == expected


@pytest.mark.slow
def test_large_ca_bundle_is_masked_whole_and_line_by_line() -> None:
    """A CA bundle as a secret (~200 KB, thousands of lines); its speed is in bench/, not here."""
    import random

    rng = random.Random(7)
    certs = [
        "-----BEGIN CERTIFICATE-----\n"
        + "\n".join(b64(rng.randbytes(48)) for _ in range(20))
        + "\n-----END CERTIFICATE-----\n"
        for _ in range(150)
    ]
    bundle = "".join(certs)  # ~200 KB, like /etc/ssl/certs/ca-certificates.crt
    masker = masker_for(bundle)
    assert masker.mask(f"ca: {b64(bundle.encode())}\n") == f"ca: {MASK}\n"
    assert masker.mask(bundle) == MASK
    assert masker.mask(certs[3]) == "\n".join([MASK] * 22) + "\n"


def test_the_json_escaped_forms_are_masked() -> None:
    # What `kubectl -o json` or `json.dumps` print for a secret with a quote, a backslash or
    # a non-ASCII character.
    secret = 'hunter2\\x"y-é'
    masker = masker_for(secret)
    assert masker.mask(json.dumps({"p": secret})) == '{"p": "***"}'
    assert masker.mask(json.dumps({"p": secret}, ensure_ascii=False)) == '{"p": "***"}'


def test_a_long_run_of_base64_like_text_is_masked_in_memory_of_its_size():
    """Each character of a long line that reads as base64 and hex cost 60 bytes (a regex of
    repeated pairs keeps a backtracking mark per pair): a 4 MiB output took 276 MB RSS."""
    import tracemalloc

    masker = Masker()
    masker.add("T", "s3cr3t-token-value")
    text = "a" * 1_000_000
    tracemalloc.start()
    try:
        assert masker.mask(text) == text
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(text), f"{peak / 1e6:.1f} MB to mask 1 MB"
