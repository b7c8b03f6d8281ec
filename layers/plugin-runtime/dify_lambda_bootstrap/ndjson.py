"""Parsing of the plugin's stdout lines.

The SDK writes each event as JSON followed by a blank line, in two separate
writes. Under gevent two sessions can interleave those writes, so one physical
line may carry several JSON objects back to back; they are split here.
"""

import json
from typing import List, Union

_decoder = json.JSONDecoder()


class Unparsed(str):
    """Text of a line (or its tail) that is not JSON."""


def parse_line(raw: Union[bytes, str]) -> List[object]:
    """Returns the JSON values on one line; non-JSON text comes back as Unparsed."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    if not text:
        return []
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    values: List[object] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        try:
            value, i = _decoder.raw_decode(text, i)
        except ValueError:
            values.append(Unparsed(text[i:]))
            break
        values.append(value)
    return values


def dumps_line(value: object) -> bytes:
    """One compact JSON value followed by a newline, UTF-8 encoded."""
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
