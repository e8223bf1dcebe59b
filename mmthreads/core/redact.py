"""Hiding obvious secrets in text the bridge shows but did not write: tool calls, reasoning, errors.

A coding agent reads files and runs commands; what it ran (``curl -H 'Authorization: Bearer …'``),
what a tool reported and what a provider complained about (``Incorrect API key provided:
sk-…``) end up in a thread: a chat message kept on a server, pushed to phones and searchable.
:func:`redact` replaces what is *recognisably* a credential with :data:`REDACTED` before such
text is posted:

* provider tokens by their shape: GitHub (``ghp_…``, ``github_pat_…``), Slack (``xoxb-…``),
  OpenAI/Anthropic-style keys (``sk-…``), AWS access key ids (``AKIA…``/``ASIA…``), Google API
  keys (``AIza…``) and JSON web tokens;
* the credentials of an ``Authorization`` value: ``Bearer <token>``, ``Basic <base64>``;
* PEM private key blocks, whole (a block cut off before its END line is hidden to the end);
* the password in a URL: ``scheme://user:password@host`` keeps the user and the host;
* the value of a credential-named key: ``password=…``, ``API_TOKEN: …``,
  ``"client_secret": "…"``, ``--password …``.

It is a safety net for the obvious cases, not a guarantee: an opaque random string with no telling
name next to it cannot be told from any other word.  The assistant's answer text is never passed
through it (the thread shows exactly what the session answered); tool lines, reasoning and error
messages are.

The function is pure and idempotent (:data:`REDACTED` matches none of the patterns), and keeps
everything around a secret unchanged, so a redacted command still reads as that command.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["REDACTED", "redact"]

#: What a secret is replaced with.
REDACTED: Final = "[redacted]"

# Bounds that keep a shape from matching inside a longer word (``task-runner-sk-…``).
_START: Final = r"(?<![A-Za-z0-9_])"
_END: Final = r"(?![A-Za-z0-9_])"

# Whole tokens recognised by their shape alone.
_TOKEN_SHAPES: Final = re.compile(
    _START
    + r"(?:"
    + r"gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub personal, OAuth, user, server, refresh tokens
    + r"|github_pat_[A-Za-z0-9_]{20,}"  # GitHub fine-grained personal access tokens
    + r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack bot, user, app … tokens
    + r"|sk-[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic (sk-ant-…) and their many look-alikes
    + r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids (long-term, temporary)
    + r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    + r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JSON web tokens
    + r")"
    + _END
)

# An Authorization value.  The scheme word stays, so the line still says what it was.  The
# value must look like a credential (a digit or ``=``, or 20 characters and more), so that
# prose such as "Bearer authentication" or "Basic functionality" is left alone.
_AUTH_VALUE: Final = re.compile(
    _START
    + r"((?:Bearer|BEARER|bearer|Basic|BASIC)\s+)"
    + r"(?![A-Za-z_][A-Za-z0-9_.-]*=[^=\s])"  # ``name=value`` is an assignment (below)
    + r"(?=[A-Za-z._~+/-]*[0-9=]|[A-Za-z0-9._~+/=-]{20})"
    + r"[A-Za-z0-9._~+/=-]{8,}"
)

# Whatever follows the scheme in an Authorization header is a credential, however it looks.
_AUTH_HEADER: Final = re.compile(
    r"(?i)(" + _START + r"authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)\s+)"
    r"(?!\[redacted\])[A-Za-z0-9._~+/=-]+"
)

# A PEM private key, from its BEGIN line to its END line, or to the end of the text.
_PRIVATE_KEY: Final = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*)",
    re.DOTALL,
)

# ``scheme://user:password@``: the password runs from the first ``:`` after the user to the
# last ``@`` of the authority (a password may contain an unescaped ``@``).
_URL_PASSWORD: Final = re.compile(
    r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/?#@\[\]]*:)(?!\[redacted\]@)[^\s/]+(@)"
)

# Names a value is a credential by, found inside longer identifiers too (``MATTERMOST_TOKEN``,
# ``db_password``, ``clientSecret``).  What may follow the name is limited to a plural ``s``, a
# separator and more, or a capitalised word, so that "secretary" or "tokenizer" are not keys.
_SECRET_NAME: Final = (
    r"(?i:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|credentials?|authorization)"
    r"(?:s|[_.-][A-Za-z0-9_.-]*|[A-Z][A-Za-z0-9]*)?"
)
# The value: a quoted string, or a run without spaces, quotes and closing punctuation.  A value
# that is already the marker is not matched again (idempotence).
_VALUE: Final = (
    r"(\"(?!\[redacted\]\")[^\"\n]*\"|'(?!\[redacted\]')[^'\n]*'"
    r"|(?![\"'])(?!\[redacted\])[^\s\"',;&)}\]]+)"
)
# ``name = value``, ``name: value``, ``"name": "value"``, ``--name=value``.
_ASSIGNMENT: Final = re.compile(
    r"(" + _START + r"[\"']?[A-Za-z0-9_.-]*?" + _SECRET_NAME + r"[\"']?\s*[=:]\s*)" + _VALUE
)
# ``--password value``: a command-line flag named like a credential, then its value.
_FLAG: Final = re.compile(
    r"(" + _START + r"--[A-Za-z0-9_-]*?" + _SECRET_NAME + r"\s+)(?!-)" + _VALUE
)
# Values that are not secrets: counts (``tokens: 126``), references to one (``$TOKEN``,
# ``${PASSWORD}``, ``%(secret)s``, ``<token>``), flags, and the scheme word of an
# Authorization value whose credentials the Authorization rule handles.
_HARMLESS: Final = re.compile(
    r"(?i)[0-9]+|[$%<{*].*|true|false|null|none|yes|no|bearer|basic|token|digest|\[redacted\].*"
)

# Keys that name something *about* a credential, not the credential: ``--password-file``,
# ``token_path``, ``password_length``, ``TOKEN_ENV``.
_ABOUT_SECRET: Final = re.compile(
    r"(?i)[_.-]?(?:file|path|dir|env|name|length|len|type|url|id|expires?|expiry|ttl)[\"']?\s*[=:]?\s*$"
)


def _hide_value(match: re.Match[str]) -> str:
    head, value = match.group(1), match.group(2)
    if _ABOUT_SECRET.search(head):
        return match.group(0)
    if value[:1] in ("'", '"'):
        inner = value[1:-1]
        if not inner or _HARMLESS.fullmatch(inner):
            return match.group(0)
        # Keep the quotes, so the line still reads as the same code.
        return f"{head}{value[0]}{REDACTED}{value[0]}"
    if _HARMLESS.fullmatch(value):
        return match.group(0)
    return head + REDACTED


def redact(text: str) -> str:
    """``text`` with the obvious secrets in it replaced by :data:`REDACTED`.

    Args:
        text: Untrusted text: a command, a tool's title or error, reasoning, an error message.

    Returns:
        The same text with each recognised secret replaced; text without one comes back
        unchanged.  ``redact(redact(t)) == redact(t)`` for every ``t``.
    """
    if not text:
        return text
    text = _PRIVATE_KEY.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _ASSIGNMENT.sub(_hide_value, text)
    text = _FLAG.sub(_hide_value, text)
    return _TOKEN_SHAPES.sub(REDACTED, text)
