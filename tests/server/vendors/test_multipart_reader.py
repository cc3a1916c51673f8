"""The streaming multipart reader, fed bodies that requests builds, in chunks of any size."""

from __future__ import annotations

import pytest
import requests

from whispercli.server.vendors.multipart import FormError, FormReader, boundary_of


def _body(data: dict[str, str], files: dict[str, tuple[str, bytes]] | None) -> tuple[bytes, bytes]:
    prepared = requests.Request("POST", "http://x/", data=data, files=files).prepare()
    boundary = boundary_of(prepared.headers["Content-Type"])
    assert boundary is not None and isinstance(prepared.body, bytes)
    return boundary, prepared.body


@pytest.mark.parametrize("size", [1, 7, 100, 1 << 20])
def test_fields_and_file_in_any_chunking(size: int) -> None:
    audio = bytes(range(256)) * 400
    boundary, body = _body(
        {"providers": "whisper", "language": "en"}, {"file": ("audio.wav", audio)}
    )
    reader, got = FormReader(boundary), bytearray()
    for i in range(0, len(body), size):
        for piece in reader.feed(body[i : i + size]):
            got += piece
    reader.finish()
    assert bytes(got) == audio
    assert reader.fields == {"providers": "whisper", "language": "en"}
    assert reader.has_file and reader.file_name == "audio.wav"


def test_refusals() -> None:
    assert boundary_of("application/json") is None
    boundary, body = _body({}, {"other": ("a.wav", b"x")})
    with pytest.raises(FormError) as exc:
        FormReader(boundary).feed(body)
    assert exc.value.field == "other"
    boundary, body = _body({"a": "b"}, {"file": ("a", b"1")})
    reader = FormReader(boundary)
    reader.feed(body[:-10])
    with pytest.raises(FormError, match="truncated"):
        reader.finish()
    boundary, body = _body({"big": "x" * (1024 * 1024 + 1)}, {"file": ("a", b"1")})
    with pytest.raises(FormError, match="1 MiB"):
        FormReader(boundary).feed(body)
