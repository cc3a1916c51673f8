"""A streaming multipart/form-data reader: the file part's bytes go straight on (to the blob
store) as they arrive, the other fields are kept (bounded). Nothing is spooled to a temporary
file, unlike Starlette's ``request.form()``.
"""

from __future__ import annotations

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 1024 * 1024
"""All non-file fields together."""
MAX_FIELDS = 64


class FormError(ValueError):
    """A form the server refuses; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type, else None."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    return options.get(b"boundary") or None


class FormReader:
    """Feed the body in chunks; each :meth:`feed` returns the file bytes it contained."""

    def __init__(self, boundary: bytes, file_field: str = "file") -> None:
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        """The text fields by name (a repeated name keeps its last value)."""
        self.pairs: list[tuple[str, str]] = []
        """Every text field in order, repeats included (OpenAI's ``name[]`` lists)."""
        self.has_file = False
        self.file_name: str | None = None
        self._out: list[bytes] = []
        self._field_bytes = 0
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_cb,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._headers, self._name, self._is_file, self._value = {}, None, False, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise FormError("form", "a form part has no name")
        self._name = name.decode("utf-8", "replace")
        self._is_file = b"filename" in options
        if self._is_file:
            if self._name != self.file_field or self.has_file:
                raise FormError(self._name, f"only one file part, named {self.file_field!r}")
            self.has_file = True
            self.file_name = options[b"filename"].decode("utf-8", "replace")
        elif len(self.pairs) >= MAX_FIELDS:
            raise FormError(self._name, f"more than {MAX_FIELDS} form fields")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._out.append(bytes(data[start:end]))
            return
        self._field_bytes += end - start
        if self._field_bytes > MAX_FIELD_BYTES:
            raise FormError(self._name or "form", "the form fields are larger than 1 MiB")
        self._value += data[start:end]

    def _part_end(self) -> None:
        if not self._is_file and self._name is not None:
            try:
                value = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise FormError(self._name, "the field is not UTF-8 text") from None
            self.fields[self._name] = value
            self.pairs.append((self._name, value))

    def _end(self) -> None:
        self._ended = True

    def feed(self, chunk: bytes) -> list[bytes]:
        try:
            self._parser.write(chunk)
        except FormError:
            raise
        except Exception as exc:  # python-multipart's own parse errors
            raise FormError("form", f"the multipart body is malformed: {exc}") from None
        out, self._out = self._out, []
        return out

    def finish(self) -> None:
        """Check the body ended with its closing boundary."""
        if not self._ended:
            raise FormError("form", "the multipart body is truncated (no closing boundary)")
