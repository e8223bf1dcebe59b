"""Files crossing the bridge: safe names, model capabilities, data URIs only."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmthreads.core.files import MAX_NAME, decode_data_uri, file_kind, refusal, safe_filename
from mmthreads.wire.opencode_normalise import ModelInfo


@pytest.mark.parametrize(
    ("given_name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\notes.txt", "notes.txt"),
        ("my file (1).txt", "my_file_1_.txt"),
        (".bashrc", "bashrc"),
        ("", "file"),
        ("///", "file"),
        ("a\x00b\nc.txt", "abc.txt"),
        ("résumé.md", "résumé.md"),
    ],
)
def test_safe_filename(given_name: str, safe: str) -> None:
    assert safe_filename(given_name) == safe


def test_a_long_name_keeps_its_extension() -> None:
    name = safe_filename("x" * 300 + ".tar")
    assert len(name) == MAX_NAME
    assert name.endswith(".tar")


@given(st.text())
def test_safe_names_never_hold_a_path_or_control_characters(name: str) -> None:
    safe = safe_filename(name)
    assert safe
    assert len(safe) <= MAX_NAME
    assert "/" not in safe
    assert "\\" not in safe
    assert not safe.startswith(".")
    assert all(ch.isprintable() and not ch.isspace() for ch in safe)


@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("text/plain", "text"),
        ("text/markdown; charset=utf-8", "text"),
        ("application/json", "text"),
        ("application/vnd.api+json", "text"),
        ("image/png", "image"),
        ("application/pdf", "pdf"),
        ("application/zip", "other"),
        ("", "other"),
    ],
)
def test_file_kind(mime: str, kind: str) -> None:
    assert file_kind(mime) == kind


_TEXT_ONLY = ModelInfo(provider_id="stub", model_id="text")
_VISION = ModelInfo(provider_id="stub", model_id="eyes", image_input=True)


def test_what_a_model_can_take() -> None:
    assert refusal("text/plain", _TEXT_ONLY) is None
    assert refusal("image/png", _VISION) is None
    assert refusal("image/png", _TEXT_ONLY) == "the model stub/text does not take images"
    assert refusal("application/pdf", _VISION) == "the model stub/eyes does not take PDFs"
    assert refusal("image/png", None) is None  # unknown model: OpenCode decides
    why = refusal("application/zip", None)
    assert why == "application/zip files cannot be given to a model; send text, images or PDFs"


def test_data_uris_are_decoded_within_the_limit() -> None:
    payload = base64.b64encode(b"hello").decode()
    assert decode_data_uri(f"data:text/plain;base64,{payload}", max_bytes=5) == (
        "text/plain",
        b"hello",
    )
    assert decode_data_uri(f"data:text/plain;base64,{payload}", max_bytes=4) is None
    assert decode_data_uri("data:,a%20b", max_bytes=10) == ("text/plain", b"a b")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "/etc/passwd", "https://example.com/x.png", "data:no-comma"]
)
def test_anything_but_a_data_uri_is_never_read(url: str) -> None:
    assert decode_data_uri(url, max_bytes=1 << 20) is None
