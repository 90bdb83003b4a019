"""Trace-context headers: B3 (multi-header and single ``b3``) and W3C ``traceparent``.

Pure functions over a request head (bytes, from the request line to the blank line):
``extract`` reads the incoming context, ``rewrite`` returns the head with the agent's context set.
References: https://github.com/openzipkin/b3-propagation and https://www.w3.org/TR/trace-context/.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

try:  # Cython's own flag: True in the module setup.py builds, False in the plain .py
    import cython

    _COMPILED = cython.compiled
except ImportError:  # the plain .py where Cython is not installed
    _COMPILED = False

# Lower-cased header names the agent owns when it sets a context (tracestate is left alone).
TRACE_HEADERS = frozenset({b"x-b3-traceid", b"x-b3-spanid", b"x-b3-parentspanid", b"x-b3-sampled", b"x-b3-flags", b"b3", b"traceparent"})
_MARKERS = (b"\nx-b3-", b"\nb3:", b"\ntraceparent:")
_HEX = frozenset("0123456789abcdef")

B3_MULTI = 1
B3_SINGLE = 2
W3C = 4


@dataclass(slots=True)
class IncomingContext:
    trace_id: str = ""  # "" when the request carries only a sampling decision
    span_id: str = ""
    parent_id: str = ""
    sampled: bool | None = None
    debug: bool = False
    formats: int = 0  # bit set of B3_MULTI, B3_SINGLE, W3C seen in the request


_getrandbits = random.getrandbits


def new_trace_id() -> str:
    return "%032x" % random.getrandbits(128)


def new_span_id() -> str:
    # a zero span id is invalid in both B3 and W3C
    return "%016x" % (random.getrandbits(64) or 1)


# New traces, drawn NEW_TRACES_PER_DRAW at a time: one is taken on every request without context,
# and at a few hundred requests per second the caches are cold for each of them; in a batch the
# random generator, the formatting and their data stay warm, and the request path is left with a
# pop, a comparison and a concatenation. Entries are the tuples ``new_trace`` returns. The event
# loop pops (``NEW_TRACES.pop()``, atomic; IndexError when empty: then ``new_trace()``).
NEW_TRACES_PER_DRAW = 64
NEW_TRACES: list[tuple[str, str, int, bytes, bytes]] = []
os.register_at_fork(after_in_child=NEW_TRACES.clear)  # a child must not reuse its parent's ids

def sample_key(trace_id: str) -> int:
    """The number a trace's sampling decision compares with the sampled share of 2**64 (its low
    64 bits), the same on every agent of the trace; ValueError when the id is not hex."""
    return int(trace_id[-16:], 16)


def _new_trace_lines(trace: bytes, span: bytes, sampled: bool) -> bytes:
    """The header lines of a new trace in B3 multi and traceparent (``headers_for``'s common case)."""
    flag = b"1" if sampled else b"0"
    return b"".join((b"X-B3-TraceId: ", trace, b"\r\nX-B3-SpanId: ", span, b"\r\nX-B3-Sampled: ", flag,
                     b"\r\ntraceparent: 00-", trace, b"-", span, b"-0", flag, b"\r\n"))


def _draw_new_traces() -> None:
    count = NEW_TRACES_PER_DRAW
    ids = _getrandbits(192 * count).to_bytes(24 * count, "little").hex()
    ids_bytes = ids.encode()
    drawn = []
    for start in range(0, 48 * count, 48):
        trace_id, span_id = ids[start:start + 32], ids[start + 32:start + 48]
        trace_bytes, span_bytes = ids_bytes[start:start + 32], ids_bytes[start + 32:start + 48]
        if span_id == "0000000000000000":
            span_id = new_span_id()
            span_bytes = span_id.encode()
        drawn.append((
            trace_id, span_id, sample_key(trace_id),
            _new_trace_lines(trace_bytes, span_bytes, True) + b"\r\n",
            _new_trace_lines(trace_bytes, span_bytes, False) + b"\r\n",
        ))
    NEW_TRACES.extend(drawn)


def new_trace() -> tuple[str, str, int, bytes, bytes]:
    """A new trace: (trace_id, span_id, its ``sample_key``, then the end of a request
    head that carries it: its header lines and the blank line, sampled, and again not sampled)."""
    while True:
        try:
            return NEW_TRACES.pop()
        except IndexError:
            _draw_new_traces()


def may_carry_context(head: bytes) -> bool:
    """False when ``head`` surely carries no trace context: no ``b3`` and no ``traceparent`` in
    any case (most requests); ``extract`` decides otherwise. Compiled: one C pass over the bytes,
    without the lowered copy the plain-Python form makes."""
    if _COMPILED:
        size = len(head)
        for index in range(size - 1):
            char = head[index] | 0x20
            if char == 98 and head[index + 1] == 51:  # b3, B3
                return True
            if char == 116 and index + 11 <= size and head[index + 1] | 0x20 == 114:  # tr, TR, Tr, tR
                if head[index:index + 11].lower() == b"traceparent":
                    return True
        return False
    lowered = head.lower()
    # find(), not ``in``: bytes.__contains__ first tries its operand as an int and raises and
    # clears a TypeError
    return lowered.find(b"b3") >= 0 or lowered.find(b"traceparent") >= 0


def _is_hex(value: str, *lengths: int) -> bool:
    return len(value) in lengths and set(value) <= _HEX and value.strip("0") != ""


def _sampled_flag(value: str) -> tuple[bool | None, bool]:
    value = value.strip().lower()
    if value == "d":
        return True, True
    if value in ("1", "true"):
        return True, False
    if value in ("0", "false"):
        return False, False
    return None, False


def extract(head: bytes) -> IncomingContext | None:
    """The trace context a request head carries, or None when it carries none.

    B3 wins over traceparent when both are valid (Zipkin is the compatibility target)."""
    if not may_carry_context(head):
        return None
    lowered = head.lower()
    if not any(marker in lowered for marker in _MARKERS):
        return None
    fields: dict[bytes, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            name = name.strip().lower()
            if name in TRACE_HEADERS:
                fields.setdefault(name, value.strip().decode("latin-1"))
    context = IncomingContext()
    if b"traceparent" in fields:
        parts = fields[b"traceparent"].lower().split("-")
        if len(parts) >= 4 and len(parts[0]) == 2 and parts[0] != "ff" and _is_hex(parts[1], 32) and _is_hex(parts[2], 16) and len(parts[3]) == 2:
            context.formats |= W3C
            context.trace_id, context.span_id = parts[1], parts[2]
            try:
                context.sampled = bool(int(parts[3], 16) & 1)
            except ValueError:
                context.sampled = None
    if b"b3" in fields:
        context.formats |= B3_SINGLE
        parts = fields[b"b3"].lower().split("-")
        if len(parts) == 1:
            context.sampled, context.debug = _sampled_flag(parts[0])
        elif len(parts) >= 2 and _is_hex(parts[0], 16, 32) and _is_hex(parts[1], 16):
            context.trace_id, context.span_id, context.parent_id = parts[0], parts[1], ""
            context.sampled, context.debug = _sampled_flag(parts[2]) if len(parts) >= 3 else (None, False)
            if len(parts) >= 4 and _is_hex(parts[3], 16):
                context.parent_id = parts[3]
    if b"x-b3-traceid" in fields or b"x-b3-sampled" in fields or b"x-b3-flags" in fields:
        context.formats |= B3_MULTI
        trace_id = fields.get(b"x-b3-traceid", "").lower()
        span_id = fields.get(b"x-b3-spanid", "").lower()
        if _is_hex(trace_id, 16, 32) and _is_hex(span_id, 16):
            context.trace_id, context.span_id = trace_id, span_id
            parent = fields.get(b"x-b3-parentspanid", "").lower()
            context.parent_id = parent if _is_hex(parent, 16) else ""
        sampled, _ = _sampled_flag(fields.get(b"x-b3-sampled", ""))
        if sampled is not None:
            context.sampled = sampled
        if fields.get(b"x-b3-flags", "").strip() == "1":
            context.debug, context.sampled = True, True
    if not context.formats:
        return None
    return context


def headers_for(trace_id: str, span_id: str, parent_id: str, sampled: bool, debug: bool, formats: int) -> bytes:
    """Header lines (each ending CRLF) carrying this context in the given formats."""
    if formats == B3_MULTI | W3C and not parent_id and not debug and len(trace_id) == 32:
        return _new_trace_lines(trace_id.encode(), span_id.encode(), sampled)  # the common case, a new trace
    lines = []
    if formats & B3_MULTI:
        lines.append(f"X-B3-TraceId: {trace_id}\r\nX-B3-SpanId: {span_id}\r\n")
        if parent_id:
            lines.append(f"X-B3-ParentSpanId: {parent_id}\r\n")
        lines.append("X-B3-Flags: 1\r\n" if debug else f"X-B3-Sampled: {'1' if sampled else '0'}\r\n")
    if formats & B3_SINGLE:
        flag = "d" if debug else ("1" if sampled else "0")
        lines.append(f"b3: {trace_id}-{span_id}-{flag}" + (f"-{parent_id}" if parent_id else "") + "\r\n")
    if formats & W3C:
        lines.append(f"traceparent: 00-{trace_id.rjust(32, '0')}-{span_id}-{'01' if sampled else '00'}\r\n")
    return "".join(lines).encode("ascii")


def rewrite(head: bytes, headers: bytes, had_context: bool) -> bytes:
    """``head`` with its trace-context header lines replaced by ``headers`` (inserted just
    before the blank line that ends the head). Other bytes are left exactly as they were."""
    if not had_context:
        return head[:-2] + headers + b"\r\n"
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]]
    for line in lines[1:]:
        if line.partition(b":")[0].strip().lower() not in TRACE_HEADERS:
            kept.append(line)
    return b"\r\n".join(kept) + b"\r\n" + headers + b"\r\n"
