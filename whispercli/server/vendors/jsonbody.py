"""JSON request bodies read without trusting their size or shape.

* :func:`loads` -- ``json.loads`` whose every failure is a :class:`JsonBodyError` (a
  ``ValueError``): nesting too deep for the parser included, which is a ``RecursionError``.
* :class:`FieldStreamer` -- a JSON object read as it arrives, for a body with one huge string
  field (OctoAI's base64 ``audio``): that field's characters are handed out chunk by chunk
  (memory stays flat whatever its length), every other byte is kept, at most ``max_rest`` of
  them, and parsed at the end with the field's value replaced by ``""``.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
"""Arrays and objects nested deeper than this are refused."""
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN, _CLOSE = frozenset(b"{["), frozenset(b"}]")


class JsonBodyError(ValueError):
    """A body that is not the JSON expected; the message says what is wrong."""


def loads(raw: bytes | str) -> Any:
    """Parse ``raw`` (any failure, deep nesting included, is a :class:`JsonBodyError`)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise JsonBodyError("the JSON is nested too deeply") from None
    except ValueError as exc:
        raise JsonBodyError(f"the body is not valid JSON ({exc})") from None


class FieldStreamer:
    """Feed a JSON object's bytes as they arrive; get the characters of the string value of
    its top-level key ``field`` back from :meth:`feed` (escapes decoded), the rest of the
    object from :meth:`finish`."""

    def __init__(self, field: str, max_rest: int, max_depth: int = MAX_DEPTH) -> None:
        self.field, self.max_rest, self.max_depth = field, max_rest, max_depth
        self.seen = False
        """The field was there, with a string value."""
        self._rest = bytearray()
        self._depth = 0
        self._in_string = self._escaped = self._is_key = self._value_next = False
        self._string_start = 0
        self._key: str | None = None
        self._streaming = False
        self._escape = bytearray()  # an escape inside the field's value, cut by a chunk end

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the body; return the field's characters among them."""
        out = bytearray()
        i = 0
        while i < len(data):
            if self._streaming:
                i = self._stream(data, i, out)
            else:
                self._take(data[i])
                i += 1
        return bytes(out)

    def finish(self) -> dict[str, Any]:
        """The object without the field's value (``""`` in its place, when it was there)."""
        if self._streaming or self._in_string or self._depth:
            raise JsonBodyError("the body ended before its JSON did")
        value = loads(bytes(self._rest))
        if not isinstance(value, dict):
            raise JsonBodyError("the body must be a JSON object")
        return value

    def _take(self, byte: int) -> None:
        """One byte outside the field's value: keep it, and follow the object's structure."""
        if len(self._rest) >= self.max_rest:
            raise JsonBodyError(
                f"the fields other than '{self.field}' are larger than {self.max_rest} bytes"
            )
        if self._in_string:
            self._rest.append(byte)
            if self._escaped:
                self._escaped = False
            elif byte == _BACKSLASH:
                self._escaped = True
            elif byte == _QUOTE:
                self._in_string = False
                if self._is_key:
                    self._key = loads(bytes(self._rest[self._string_start :]))
            return
        top = self._depth == 1
        if byte == _QUOTE and top and self._value_next and self._key == self.field:
            if self.seen:
                raise JsonBodyError(f"the body has '{self.field}' twice")
            self.seen = self._streaming = True
            self._value_next = False
            self._rest += b'""'
            return
        self._rest.append(byte)
        if byte == _QUOTE:
            self._in_string, self._string_start = True, len(self._rest) - 1
            self._is_key = top and not self._value_next
        elif byte in _OPEN:
            self._depth += 1
            if self._depth > self.max_depth:
                raise JsonBodyError(f"the JSON is nested deeper than {self.max_depth} levels")
        elif byte in _CLOSE:
            self._depth -= 1
        elif top and byte == ord(":"):
            self._value_next = True
        elif top and byte == ord(","):
            self._value_next = False

    def _stream(self, data: bytes, i: int, out: bytearray) -> int:
        """Copy the field's characters from ``data[i:]`` to ``out`` up to its closing quote
        or an escape; return where to go on."""
        if self._escape:
            return self._finish_escape(data, i, out)
        quote = data.find(b'"', i)
        end = quote if quote != -1 else len(data)
        backslash = data.find(b"\\", i, end)
        if backslash != -1:
            out += data[i:backslash]
            self._escape = bytearray(b"\\")
            return backslash + 1
        out += data[i:end]
        if quote == -1:
            return len(data)
        self._streaming = False
        return quote + 1

    def _finish_escape(self, data: bytes, i: int, out: bytearray) -> int:
        need = 6 if len(self._escape) > 1 and self._escape[1] == ord("u") else 2
        take = min(need - len(self._escape), len(data) - i)
        self._escape += data[i : i + take]
        i += take
        if len(self._escape) == 2 and self._escape[1] == ord("u"):
            return i  # \u: four hex digits follow
        if len(self._escape) == need:
            char = loads(b'"' + bytes(self._escape) + b'"')
            self._escape.clear()
            out += char.encode("utf-8", "surrogatepass")  # not base64 either way
        return i
