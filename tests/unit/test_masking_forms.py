"""Secret masking of the forms tools print secrets in: JSON as Go and jq print it, YAML quoted
scalars, shell quoting, percent-encoding of either case, hex dumps, and base64 wrapped at any
width. Each form has an example and a property over random secrets: what is left after masking,
read back the way the form is read, never holds the secret."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import string
import subprocess
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.platform.masking import MASK, MIN_SECRET_LENGTH, Masker

NON_ASCII = "é€ü😀\u2028\u2029\x1b\x7f\t"
secrets = st.text(
    alphabet=string.printable + NON_ASCII, min_size=MIN_SECRET_LENGTH, max_size=16
).filter(lambda s: "*" not in s and len(s.strip()) >= MIN_SECRET_LENGTH)
one_line_secrets = secrets.filter(lambda s: not any(c in s for c in "\n\r\x0b\x0c\x85\u2028\u2029"))
noise = st.text(alphabet=string.printable + NON_ASCII, max_size=12).filter(lambda s: "*" not in s)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def masker_for(*values: str) -> Masker:
    masker = Masker()
    for value in values:
        assert masker.add("SECRET", value) is None
    return masker


def read_back(parse: Callable[[str], Any], masked: str) -> Any:
    """The masked text parsed; as it is when masking cut an escape sequence that happened to
    hold the secret's characters (a secret "0026" in a `\\u0026` of other text)."""
    try:
        return parse(masked)
    except ValueError:  # yaml.YAMLError is not one, but its scanner errors are caught below
        return masked
    except yaml.YAMLError:
        return masked


def stream_all(masker: Masker, text: str, size: int) -> str:
    stream = masker.stream()
    parts = [stream.feed(text[i : i + size]) for i in range(0, len(text), size)]
    return "".join(parts) + stream.flush()


# -- JSON as Go, jq and others print it ---------------------------------------------------------


def test_go_json_escapes_are_masked() -> None:
    masker = masker_for("Tr0ub4dor&3<x>")
    assert masker.mask('{"password":"Tr0ub4dor\\u00263\\u003cx\\u003e"}') == '{"password":"***"}'
    assert masker.finds("Tr0ub4dor\\u00263\\u003cx\\u003e")


def test_slash_escaped_and_upper_case_unicode_escapes_are_masked() -> None:
    masker = masker_for("a/b/c&d")
    assert masker.mask('"a\\/b\\/c\\u0026d"') == '"***"'
    assert masker.mask('"a\\u002Fb/c\\u0026d"') == '"***"'


def test_jq_control_characters_and_line_separators_are_masked() -> None:
    masker = masker_for("esc\x1bdel\x7f\u2028x")
    assert masker.mask('"esc\\u001bdel\\u007f\\u2028x"') == '"***"'
    assert masker.mask('"esc\\u001Bdel\x7f\u2028x"') == '"***"'


def test_surrogate_pairs_are_masked() -> None:
    masker = masker_for("smile😀now")
    assert masker.mask(json.dumps("smile😀now")) == '"***"'


def json_char(char: str, choice: int) -> str:
    """One character as some JSON encoder may write it."""
    code = ord(char)
    short = {
        '"': '\\"',
        "\\": "\\\\",
        "\n": "\\n",
        "\t": "\\t",
        "\r": "\\r",
        "\b": "\\b",
        "\f": "\\f",
    }
    forms = []
    if char not in '"\\' and code >= 0x20:
        forms.append(char)
    if char in short:
        forms.append(short[char])
    if char == "/":
        forms.append("\\/")
    if code > 0xFFFF:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms += [f"\\u{high:04x}\\u{low:04x}", f"\\u{high:04X}\\u{low:04X}"]
    else:
        forms += [f"\\u{code:04x}", f"\\u{code:04X}"]
    return forms[choice % len(forms)]


@FAST
@given(secrets, noise, noise, st.lists(st.integers(0, 5), min_size=40, max_size=40))
def test_json_escaped_every_way_is_masked(
    secret: str, prefix: str, suffix: str, choices: list[int]
) -> None:
    """Each character of the string escaped in any way a JSON encoder may (Go, jq, PHP...)."""
    value = prefix + secret + suffix
    encoded = '"' + "".join(json_char(c, choices[i % 40]) for i, c in enumerate(value)) + '"'
    assert json.loads(encoded) == value
    masker = masker_for(secret)
    masked = masker.mask(encoded)
    assert secret not in read_back(json.loads, masked)
    assert masker.finds(encoded)
    assert stream_all(masker, encoded, 7) == masked


# -- YAML -----------------------------------------------------------------------------------------


def test_yaml_single_quoted_is_masked() -> None:
    masker = masker_for("It's: pw")
    assert masker.mask("password: 'It''s: pw'\n") == "password: '***'\n"


def test_yaml_double_quoted_escapes_are_masked() -> None:
    masker = masker_for('say "hi"\\é\t\x07')
    assert masker.mask('p: "say \\"hi\\"\\\\\\xE9\\t\\a"\n') == 'p: "***"\n'
    assert masker.mask('p: "say \\"hi\\"\\\\\\u00e9\\t\\x07"\n') == 'p: "***"\n'


@FAST
@given(one_line_secrets, noise, noise, st.sampled_from(["'", '"']), st.booleans())
def test_yaml_quoted_scalars_are_masked(
    secret: str, prefix: str, suffix: str, style: str, unicode: bool
) -> None:
    value = prefix + secret + suffix
    text = yaml.safe_dump({"k": value}, default_style=style, allow_unicode=unicode, width=10**6)
    masker = masker_for(secret)
    masked = masker.mask(text)
    assert secret not in str(read_back(yaml.safe_load, masked))
    assert masker.finds(text)
    assert stream_all(masker, text, 5) == masked


# -- shell quoting --------------------------------------------------------------------------------


def test_shlex_quoted_is_masked() -> None:
    masker = masker_for("it's-a-t0ken")
    quoted = shlex.quote("it's-a-t0ken")
    assert quoted == "'it'\"'\"'s-a-t0ken'"
    assert masker.mask(f"run: curl -H {quoted}") == "run: curl -H '***'"
    assert masker.mask("run: curl -H 'it'\\''s-a-t0ken'") == "run: curl -H '***'"


def test_printf_q_forms_are_masked() -> None:
    masker = masker_for("a b&c$d'e\x01")
    assert masker.mask("$'a b&c$d\\'e\\001'") == "$'***'"
    masker = masker_for("a b&c$d'e")
    assert masker.mask("x=a\\ b\\&c\\$d\\'e") == f"x={MASK}"


@FAST
@given(one_line_secrets, noise, noise)
def test_shlex_quote_and_join_are_masked(secret: str, prefix: str, suffix: str) -> None:
    text = shlex.join(["cmd", prefix + secret + suffix, "x"])
    masker = masker_for(secret)
    masked = masker.mask(text)
    try:
        words = shlex.split(masked)
    except ValueError:  # a mask inside a quoted stretch may leave its quotes unbalanced
        words = [masked]
    assert all(secret not in word for word in words)
    assert masker.finds(text)
    assert stream_all(masker, text, 5) == masked


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secrets.filter(lambda s: "\0" not in s), noise.filter(lambda s: "\0" not in s))
def test_bash_printf_q_is_masked(secret: str, prefix: str) -> None:
    value = prefix + secret
    quoted = subprocess.run(
        ["bash", "-c", 'printf %q "$1"', "_", value], capture_output=True, text=True, check=True
    ).stdout
    masker = masker_for(secret)
    masked = masker.mask(quoted)
    assert masker.finds(quoted)
    back = subprocess.run(
        ["bash", "-c", f'v={masked}; printf %s "$v"'], capture_output=True, text=True
    ).stdout
    assert secret not in back


# -- URL-encoded ------------------------------------------------------------------------------------


def test_lower_case_percent_encoding_is_masked() -> None:
    masker = masker_for("p@ss/w0rd é")
    encoded = quote("p@ss/w0rd é", safe="")
    assert masker.mask(f"?k={encoded.lower()}&x") == f"?k={MASK}&x"
    assert masker.mask(f"?k={encoded}&x") == f"?k={MASK}&x"


@FAST
@given(secrets, noise, noise, st.booleans())
def test_percent_encoded_in_either_case_is_masked(
    secret: str, prefix: str, suffix: str, lower: bool
) -> None:
    encoded = quote(prefix + secret + suffix, safe="")
    if lower:
        encoded = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)
    masker = masker_for(secret)
    masked = masker.mask(encoded)
    assert secret not in unquote(masked, errors="surrogateescape")
    assert secret not in unquote_plus(masked, errors="surrogateescape")
    assert stream_all(masker, encoded, 5) == masked


# -- hex -----------------------------------------------------------------------------------------------


def xxd_plain(data: bytes, upper: bool = False) -> str:
    text = data.hex().upper() if upper else data.hex()
    return "".join(text[i : i + 60] + "\n" for i in range(0, len(text), 60))


def printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)


def hexdump_c(data: bytes) -> str:
    lines = []
    for at in range(0, len(data), 16):
        row = data[at : at + 16]
        pairs = [f"{b:02x}" for b in row]
        hexa = " ".join(pairs[:8]) + ("  " + " ".join(pairs[8:]) if len(pairs) > 8 else "")
        lines.append(f"{at:08x}  {hexa:<48}  |{printable(row)}|\n")
    return "".join(lines) + f"{len(data):08x}\n"


def xxd(data: bytes) -> str:
    lines = []
    for at in range(0, len(data), 16):
        row = data[at : at + 16]
        groups = " ".join(row[i : i + 2].hex() for i in range(0, len(row), 2))
        lines.append(f"{at:08x}: {groups:<39}  {printable(row)}\n")
    return "".join(lines)


def od_tx1(data: bytes) -> str:
    lines = []
    for at in range(0, len(data), 16):
        lines.append(f"{at:07o}" + "".join(f" {b:02x}" for b in data[at : at + 16]) + "\n")
    return "".join(lines) + f"{len(data):07o}\n"


DUMPS = {"xxd -p": xxd_plain, "hexdump -C": hexdump_c, "xxd": xxd, "od -tx1": od_tx1}


def hex_left(masked: str, dump: str) -> bytes:
    """The bytes a reader gets back from a masked dump: hex pairs between masks and columns."""
    digits = []
    for line in masked.splitlines():
        if dump == "xxd -p":
            digits.append(line)
            continue
        if dump == "hexdump -C":
            line = line[8:].split("|")[0]
        elif dump == "xxd":
            line = line[10:].split("  ")[0]
        else:
            line = line[7:]
        digits.append(line.replace(" ", ""))
    text = "".join(digits).replace(MASK, "#")
    out = b""
    for part in text.split("#"):
        for align in (0, 1):
            chunk = part[align:]
            out += b"|" + bytes.fromhex(chunk[: len(chunk) // 2 * 2])
    return out


def test_xxd_plain_wrapped_secret_is_masked() -> None:
    secret = "s3cret-in-a-dump!"
    data = b"x" * 25 + secret.encode() + b"y" * 20
    masker = masker_for(secret)
    masked = masker.mask(xxd_plain(data))
    assert secret.encode() not in hex_left(masked, "xxd -p")
    assert masked.count("\n") == xxd_plain(data).count("\n")


@pytest.mark.parametrize("dump", ["hexdump -C", "xxd", "od -tx1"])
def test_dump_across_lines_is_masked_with_its_text_column(dump: str) -> None:
    secret = "my-super-secret-token"
    data = b"header:" + secret.encode() + b"\n"
    masker = masker_for(secret)
    masked = masker.mask(DUMPS[dump](data))
    assert secret.encode() not in hex_left(masked, dump)
    assert "my-super" not in masked and "token" not in masked


@pytest.mark.skipif(shutil.which("xxd") is None, reason="needs xxd")
@pytest.mark.parametrize("argv", [["xxd"], ["xxd", "-p"], ["hexdump", "-C"], ["od", "-tx1"]])
def test_real_dump_tools_are_masked(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"needs {argv[0]}")
    secret = "Tr0ub4dor&3<x>-long-enough"
    data = b"0123456789abc" + secret.encode() + b"\n"
    shown = subprocess.run(argv, input=data, capture_output=True, check=True).stdout.decode()
    masked = masker_for(secret).mask(shown)
    assert masked != shown
    assert secret.encode() not in hex_left(masked, " ".join(argv))
    assert "Tr0ub4dor" not in masked


@FAST
@given(secrets, st.binary(max_size=40), st.binary(max_size=20), st.sampled_from(sorted(DUMPS)))
def test_hex_dumps_never_give_the_secret_back(
    secret: str, before: bytes, after: bytes, dump: str
) -> None:
    data = before + secret.encode() + after
    text = DUMPS[dump](data)
    masker = masker_for(secret)
    masked = masker.mask(text)
    assert secret.encode() not in hex_left(masked, dump)
    assert masker.finds(text)
    assert stream_all(masker, text, 13) == masked
    lines = text.splitlines(keepends=True)
    stream = masker.stream()
    assert "".join(stream.feed(line) for line in lines) + stream.flush() == masked


# -- base64 wrapped at any width ------------------------------------------------------------------


def wrapped(data: bytes, width: int, urlsafe: bool, indent: str) -> str:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return "".join(indent + text[i : i + width] + "\n" for i in range(0, len(text), width))


def base64_left(masked: str) -> list[bytes]:
    """Every decoding, at every alignment, of the masked lines joined, between the masks."""
    joined = "".join(line.strip() for line in masked.splitlines()).replace(MASK, "#")
    out = []
    for part in joined.split("#"):
        part = part.replace("-", "+").replace("_", "/").rstrip("=")
        for align in range(4):
            chunk = part[align:]
            chunk = chunk[: len(chunk) // 4 * 4]
            out.append(base64.b64decode(chunk))
    return out


def test_base64_wrapped_at_76_with_secret_across_the_break_is_masked() -> None:
    secret = "correct-horse-battery"
    data = b"\x00" * 50 + secret.encode() + b"\x00" * 40  # encoded, the secret spans column 76
    text = base64.encodebytes(data).decode()
    masker = masker_for(secret)
    masked = masker.mask(text)
    assert all(secret.encode() not in left for left in base64_left(masked))
    assert masked.count("\n") == text.count("\n")


@FAST
@given(
    secrets,
    st.binary(max_size=60),
    st.binary(max_size=30),
    st.integers(16, 90),
    st.booleans(),
    st.sampled_from(["", "    "]),
)
def test_base64_wrapped_at_any_width_never_gives_the_secret_back(
    secret: str, before: bytes, after: bytes, width: int, urlsafe: bool, indent: str
) -> None:
    text = wrapped(before + secret.encode() + after, width, urlsafe, indent)
    masker = masker_for(secret)
    masked = masker.mask(text)
    assert all(secret.encode() not in left for left in base64_left(masked))
    assert masker.finds(text)
    stream = masker.stream()
    lines = text.splitlines(keepends=True)
    assert "".join(stream.feed(line) for line in lines) + stream.flush() == masked
    assert stream_all(masker, text, 11) == masked


def test_stream_holds_a_base64_run_only_as_far_as_a_secret_reaches() -> None:
    masker = masker_for("short-secret")
    stream = masker.stream()
    lines = wrapped(bytes(range(256)) * 3, 64, False, "")  # 16 full lines
    out = stream.feed(lines)
    # 12 bytes reach at most 28 hex or base64 characters: the last line alone is held.
    assert out == lines[: lines.rstrip("\n").rfind("\n") + 1]
    assert out + stream.feed("done.\n") + stream.flush() == lines + "done.\n"


def test_stream_does_not_hold_short_lines_or_lines_of_other_text() -> None:
    stream = masker_for("short-secret").stream()
    for line in ("Done\n", "deadbeef\n", "Waiting for it\n", "QUJDREVGR0hJSktM=\n"):
        assert stream.feed(line) == line
    assert stream.feed("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n") == ""  # a blob may go on
    assert stream.feed("Done\n") == "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY\nDone\n"


# -- mapping keys, finds ---------------------------------------------------------------------------


def test_mapping_keys_are_masked() -> None:
    masker = masker_for("tok-123456")
    assert masker.mask_values({"tok-123456": {"x": "tok-123456"}, "k": 1}) == {
        MASK: {"x": MASK},
        "k": 1,
    }


@FAST
@given(secrets, noise, st.sampled_from(["json", "yaml", "shell", "url", "hex", "base64"]))
def test_finds_answers_whether_mask_changes_the_text(secret: str, text: str, form: str) -> None:
    value = text + secret
    shown = {
        "json": json.dumps(value).replace("&", "\\u0026"),
        "yaml": yaml.safe_dump(value, default_style="'", width=10**6),
        "shell": shlex.quote(value),
        "url": quote(value, safe="").lower(),
        "hex": xxd(value.encode()),
        "base64": wrapped(value.encode(), 16, False, ""),
    }[form]
    masker = masker_for(secret)
    assert masker.finds(shown) is (masker.mask(shown) != shown)
    assert masker.finds(text) is (masker.mask(text) != text)
