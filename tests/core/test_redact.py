"""Redaction: each kind of secret is hidden, the text around it kept; properties over any text."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmthreads.core.redact import REDACTED, redact

R = REDACTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Shapes.
        ("export GH=ghp_abcdefghijklmnopqrstuvwxyz0123", f"export GH={R}"),
        ("github_pat_11ABCDEFG0123456789_abcdefghij", R),
        ("slack xoxb-1234567890-abcdefghij done", f"slack {R} done"),
        ("key sk-proj-abcdefghijklmnop1234", f"key {R}"),
        ("sk-ant-api03-abcdefghijklmnopqrstuv", R),
        ("aws AKIAABCDEFGHIJKLMNOP and ASIA0123456789ABCDEF", f"aws {R} and {R}"),
        ("AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", R),
        ("jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", f"jwt {R}"),
        # Authorization values.
        (
            'curl -H "Authorization: Bearer abcd1234efgh5678" x',
            f'curl -H "Authorization: Bearer {R}" x',
        ),
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {R}"),
        ("authorization: token abc", f"authorization: token {R}"),
        ("Bearer abcdefghijklmnopqrstuvwxyz", f"Bearer {R}"),
        # Private keys, whole or cut off.
        (
            "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----\nb",
            f"a\n{R}\nb",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn", R),
        ("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----", R),
        # URLs.
        (
            "git clone https://bob:hunter2@github.com/x.git",
            f"git clone https://bob:{R}@github.com/x.git",
        ),
        ("postgres://u:p@ss@db:5432/x", f"postgres://u:{R}@db:5432/x"),
        # Assignments and flags.
        ("password=hunter2 user=bob", f"password={R} user=bob"),
        ("MATTERMOST_TOKEN=abcdefghijklmnopqrstuvwxyz", f"MATTERMOST_TOKEN={R}"),
        ('{"client_secret": "abc", "id": 3}', f'{{"client_secret": "{R}", "id": 3}}'),
        ("db_password: 'x y'", f"db_password: '{R}'"),
        ("apiKey=abc123;", f"apiKey={R};"),
        ("mysql --password hunter2 -u root", f"mysql --password {R} -u root"),
        ("tool --api-key=abc", f"tool --api-key={R}"),
    ],
)
def test_secrets_are_hidden(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "echo hello-from-tool",
        "tokens: 126 in, 21 out",
        "token: 126",
        "secretary: Alice",
        "tokenizer: bpe",
        "Bearer authentication is basic functionality",
        "echo $MATTERMOST_TOKEN",
        "password=${PASSWORD}",
        "the token expired",
        "http://127.0.0.1:4096/session",
        "task-runner-sk-is-not-a-key",
        "ls --password-file=/etc/x",  # a file name is not the password
        "secret=true",
    ],
)
def test_harmless_text_is_kept(text: str) -> None:
    assert redact(text) == text


# --- properties --------------------------------------------------------------------------------

_TOKENS = st.one_of(
    st.text(string.ascii_letters + string.digits, min_size=36, max_size=40).map("ghp_".__add__),
    st.text(string.ascii_letters + string.digits + "-", min_size=10, max_size=30).map(
        "xoxb-0".__add__
    ),
    st.text(string.ascii_letters + string.digits, min_size=20, max_size=48).map("sk-".__add__),
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map("AKIA".__add__),
)
_PASSWORDS = st.text(string.ascii_letters + string.digits + "!#%^*+~", min_size=6, max_size=24)
_WORDS = st.text(string.ascii_lowercase + " .\n", max_size=60)


@st.composite
def _secret_in_context(draw: st.DrawFn) -> tuple[str, str]:
    """(text, secret): a secret of some kind somewhere in ordinary words.

    Every secret holds a digit or a capital, so the lower-case words around it cannot repeat it.
    """
    kind = draw(st.sampled_from(["token", "url", "assign", "bearer", "flag", "key"]))
    if kind == "token":
        secret = draw(_TOKENS)
        middle = secret
    elif kind == "url":
        secret = draw(_PASSWORDS.map(lambda p: p + "7x"))
        middle = f"https://user:{secret}@example.com/repo"
    elif kind == "assign":
        secret = draw(_PASSWORDS.map(lambda p: "Q9" + p))
        name = draw(st.sampled_from(["password", "API_TOKEN", "client_secret", "apiKey"]))
        sep = draw(st.sampled_from(["=", ": ", " = "]))
        middle = f"{name}{sep}{secret}"
    elif kind == "bearer":
        secret = draw(st.text(string.ascii_letters + string.digits, min_size=20, max_size=40))
        secret = "T0" + secret
        middle = f"Authorization: Bearer {secret}"
    elif kind == "flag":
        secret = draw(_PASSWORDS.map(lambda p: "Q9" + p))
        middle = f"--password {secret}"
    else:
        secret = "M1" + draw(st.text(string.ascii_letters + string.digits + "+/", min_size=8))
        middle = f"-----BEGIN EC PRIVATE KEY-----\n{secret}\n-----END EC PRIVATE KEY-----"
    before, after = draw(_WORDS), draw(_WORDS)
    return f"{before} {middle} {after}", secret


@given(_secret_in_context())
def test_a_secret_never_survives(case: tuple[str, str]) -> None:
    text, secret = case
    assert secret not in redact(text)
    assert REDACTED in redact(text)


@given(st.text())
def test_redaction_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@given(_secret_in_context())
def test_redaction_is_idempotent_on_secrets(case: tuple[str, str]) -> None:
    once = redact(case[0])
    assert redact(once) == once


@given(st.text(string.ascii_letters + string.digits + " .,\n()", max_size=200))
def test_plain_words_are_unchanged(text: str) -> None:
    # Without separators (= : / @ - _) nothing but a bare token shape could match, and those
    # need a prefix (ghp_, sk-, xoxb-) with a separator or an AKIA-like run; words stay.
    if "AKIA" in text or "ASIA" in text or "AIza" in text:
        return
    assert redact(text) == text


@given(_WORDS, _WORDS)
def test_text_around_a_secret_is_kept(before: str, after: str) -> None:
    text = f"{before} password=hunter2 {after}"
    assert redact(text) == f"{before} password={R} {after}"
