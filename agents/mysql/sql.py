"""SQL text as the agent reports it: a normalized digest that groups statements for metrics
(literals to ``?``, IN lists and VALUES rows collapsed, comments stripped, whitespace and keyword
case normalized), the statement type, masked text for spans, multi-statement splitting and the
sqlcommenter ``traceparent``.

One tokenizer serves all of them. It never fails: text cut short by the capture limit (an
unterminated string or comment) is read to its end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>/\*(?:[^*]++|\*(?!/))*+(?:\*/)?|--(?:[ \t][^\n]*+|$|(?=\n))|\#[^\n]*+)
  | (?P<string>(?:[nN]|_[A-Za-z0-9]++)?'(?:[^'\\]++|\\.?|'')*+'?|"(?:[^"\\]++|\\.?|"")*+"?)
  | (?P<quoted>`(?:[^`]++|``)*+`?)
  | (?P<hex>0[xX][0-9a-fA-F]++|[xX]'[0-9a-fA-F]*+'?|0[bB][01]++|[bB]'[01]*+'?)
  | (?P<number>(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][-+]?\d++)?(?![\w$]))
  | (?P<word>[@]{0,2}[^\W\d][\w$]*+|[@]{1,2}(?:`[^`]*+`|'[^']*+'|"[^"]*+")?|\d[\w$]*+)
  | (?P<param>\?|:[A-Za-z_]\w*+)
  | (?P<op><=>|<=|>=|<>|!=|:=|\|\||&&|<<|>>|->>?|[^\s\w])
    """,
    re.VERBOSE | re.DOTALL,
)

LITERALS = frozenset(("string", "hex", "number"))
MAX_DIGEST_CHARS = 1024  # a digest is a metrics key: bounded

KEYWORDS = frozenset("""
    ACCESSIBLE ADD ALL ALTER ANALYZE AND AS ASC BEGIN BETWEEN BY CALL CASCADE CASE CHANGE CHECK
    COLLATE COLUMN COMMIT CONSTRAINT CREATE CROSS DATABASE DEALLOCATE DECLARE DEFAULT DELAYED DELETE
    DESC DESCRIBE DISTINCT DIV DO DROP DUAL DUPLICATE ELSE ELSEIF END ESCAPE EXCEPT EXECUTE EXISTS
    EXPLAIN FALSE FETCH FOR FORCE FOREIGN FROM FULL FUNCTION GRANT GROUP HANDLER HAVING IF IGNORE
    IN INDEX INFILE INNER INSERT INTERSECT INTERVAL INTO IS JOIN KEY KILL LEFT LIKE LIMIT LOAD LOCAL
    LOCK LOCKS MATCH MOD NATURAL NOT NULL OFFSET ON OPTIMIZE OR ORDER OUTER OVER PARTITION PREPARE
    PRIMARY PROCEDURE RECURSIVE REFERENCES REGEXP RELEASE RENAME REPEAT REPLACE RESET RETURNING
    REVOKE RIGHT ROLLBACK SAVEPOINT SCHEMA SELECT SESSION SET SHARE SHOW START TABLE TABLES
    TEMPORARY THEN TO TRANSACTION TRIGGER TRUE TRUNCATE UNION UNIQUE UNLOCK UPDATE USE USING
    VALUES VIEW WHEN WHERE WHILE WITH XA
    AVG COUNT MAX MIN SUM CONCAT COALESCE IFNULL NOW CAST CONVERT CHARACTER READ WRITE
""".split())  # reserved words (and common functions) only: "data", "status", "value" are column names too

# A word before "(" that is not one of these is a function or table name: "COUNT(*)", "t(a, b)".
_SPACED_BEFORE_PAREN = frozenset("""
    AND AS BY EXISTS FROM IN INTO JOIN NOT ON OR SELECT SET USING VALUE VALUES WHERE WHEN THEN ELSE
    UNION ALL ANY SOME RETURNING WITH TABLE IF IS LIKE REGEXP BETWEEN KEY INDEX OVER
""".split())

_DML_AFTER_WITH = frozenset(("SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE"))

_TRACEPARENT = re.compile(
    r"traceparent\s*=\s*['\"]?(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})",
    re.IGNORECASE,
)


def tokens(sql: str) -> list[tuple[str, str]]:
    """(kind, text) tokens covering ``sql`` end to end."""
    return [(match.lastgroup, match.group()) for match in _TOKEN.finditer(sql)]


@dataclass(slots=True, frozen=True)
class Statement:
    digest: str
    statement_type: str


def analyze(sql: str) -> Statement:
    """Digest and statement type of one statement's text."""
    significant = [(kind, value) for kind, value in tokens(sql) if kind not in ("ws", "comment")]
    return Statement(_digest(significant), _statement_type(significant))


def _statement_type(significant: list[tuple[str, str]]) -> str:
    words = [value.upper() for kind, value in significant if kind == "word"]
    if not words:
        return "OTHER"
    first = words[0]
    if first == "WITH":
        # A CTE names its real verb later: the first DML keyword after it.
        depth = 0
        for kind, value in significant:
            if value == "(":
                depth += 1
            elif value == ")":
                depth -= 1
            elif kind == "word" and depth == 0 and value.upper() in _DML_AFTER_WITH:
                return value.upper()
        return "SELECT"
    if first == "START" and len(words) > 1 and words[1] == "TRANSACTION":
        return "BEGIN"
    return first


def _normalized(significant: list[tuple[str, str]]) -> list[str]:
    """Token texts with literals as "?", keywords upper-cased, a sign before a literal folded in."""
    out: list[str] = []
    kinds: list[str] = []
    for kind, value in significant:
        if kind in LITERALS or kind == "param":
            if out and kinds[-1] == "word" and out[-1].startswith("_"):
                out.pop()  # a character set introducer: _binary X'..', _utf8mb4 'x'
                kinds.pop()
            if out and out[-1] in ("-", "+") and (len(out) == 1 or kinds[-2] in ("op", "keyword")
                                                  and out[-2] not in (")",)):
                out.pop()
                kinds.pop()
            out.append("?")
            kinds.append("literal")
        elif kind == "word":
            upper = value.upper()
            if upper in KEYWORDS:
                out.append(upper)
                kinds.append("keyword")
            else:
                out.append(value)
                kinds.append("word")
        elif kind == "quoted":
            out.append(value)
            kinds.append("word")
        else:
            out.append(value)
            kinds.append("op")
    return _collapse_lists(out)


def _collapse_lists(out: list[str]) -> list[str]:
    """``IN (?, ?, ?)`` -> ``IN (...)``; ``VALUES (?, ?), (?, ?)`` -> ``VALUES (...)``."""
    result: list[str] = []
    i, n = 0, len(out)
    while i < n:
        token = out[i]
        result.append(token)
        i += 1
        if token not in ("IN", "VALUES") or i >= n or out[i] != "(":
            continue
        j = i
        tuples = 0
        while j < n and out[j] == "(":
            k = j + 1
            while k < n and out[k] in ("?", "NULL", "TRUE", "FALSE", ","):
                k += 1
            if k >= n or out[k] != ")" or k == j + 1:
                break
            tuples += 1
            j = k + 1
            if token == "IN" or j >= n or out[j] != ",":
                break
            if j + 1 < n and out[j + 1] == "(":
                j += 1
            else:
                break
        if tuples:
            result.extend(("(", "...", ")"))
            i = j
    return result


def _digest(significant: list[tuple[str, str]]) -> str:
    parts: list[str] = []
    previous = ""
    for token in _normalized(significant):
        if parts and not (
            token in (",", ")", ".", ";")
            or previous in ("(", ".", "@")
            or (token == "(" and previous not in _SPACED_BEFORE_PAREN and (previous[:1].isalnum()
                                                                           or previous[:1] in "_`$"))
        ):
            parts.append(" ")
        parts.append(token)
        previous = token
    digest = "".join(parts).rstrip(" ;")
    return digest if len(digest) <= MAX_DIGEST_CHARS else digest[:MAX_DIGEST_CHARS] + "..."


@lru_cache(maxsize=1024)  # prepared statements and repeated queries mask the same text
def mask(sql: str) -> str:
    """``sql`` with every literal replaced by ``?``, everything else (comments too) as written."""
    return "".join("?" if kind in LITERALS else value for kind, value in tokens(sql))


def split(sql: str) -> list[str]:
    """The statements of a multi-statement text, split on top-level semicolons (empty ones
    dropped). Compound bodies (BEGIN ... END) are not understood: callers split only when the
    server's results say there were several statements."""
    pieces: list[str] = []
    current: list[str] = []
    meaningful = False
    for kind, value in tokens(sql):
        if kind == "op" and value == ";":
            if meaningful:
                pieces.append("".join(current).strip())
            current, meaningful = [], False
            continue
        current.append(value)
        if kind not in ("ws", "comment"):
            meaningful = True
    if meaningful:
        pieces.append("".join(current).strip())
    return pieces


def traceparent(sql: str) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) from a sqlcommenter ``/*traceparent='00-...'*/``."""
    if "traceparent" not in sql:
        return None
    match = _TRACEPARENT.search(sql)
    if match is None:
        return None
    trace_id, span_id = match["trace"].lower(), match["span"].lower()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, bool(int(match["flags"], 16) & 1)
