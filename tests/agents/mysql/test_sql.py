from __future__ import annotations

import pytest

from agents.mysql import sql


@pytest.mark.parametrize("text, digest, statement_type", [
    ("SELECT c FROM sbtest1 WHERE id=42", "SELECT c FROM sbtest1 WHERE id = ?", "SELECT"),
    ("select  c\n from sbtest1\twhere id = 7 -- why\n", "SELECT c FROM sbtest1 WHERE id = ?", "SELECT"),
    ("/* app */ SELECT * FROM t WHERE a IN (1, 2, 3) AND b IN ('x')", "SELECT * FROM t WHERE a IN (...) AND b IN (...)", "SELECT"),
    ("INSERT INTO t (a, b) VALUES (1, 'a'), (2, NULL)", "INSERT INTO t(a, b) VALUES (...)", "INSERT"),
    ("insert into t values (1)", "INSERT INTO t VALUES (...)", "INSERT"),
    ("UPDATE t SET n = n - 1, s = \"it's\" WHERE id = -5", "UPDATE t SET n = n - ?, s = ? WHERE id = ?", "UPDATE"),
    ("DELETE FROM t WHERE d > 0x1F OR e = X'AB' OR f = 1.5e3", "DELETE FROM t WHERE d > ? OR e = ? OR f = ?", "DELETE"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT ?) SELECT * FROM x", "SELECT"),
    ("START TRANSACTION", "START TRANSACTION", "BEGIN"),
    ("CALL p(1, 'two')", "CALL p(?, ?)", "CALL"),
    ("SELECT 'it''s \\' quoted', `weird``name` FROM t", "SELECT ?, `weird``name` FROM t", "SELECT"),
    ("SELECT k FROM t WHERE id = ?", "SELECT k FROM t WHERE id = ?", "SELECT"),
    ("", "", "OTHER"),
])
def test_digest_and_statement_type(text, digest, statement_type):
    statement = sql.analyze(text)
    assert (statement.digest, statement.statement_type) == (digest, statement_type)


def test_same_shape_same_digest():
    assert sql.analyze("SELECT * FROM t WHERE id IN (1,2)").digest == sql.analyze("select * from t where id in (3, 4, 5, 6)").digest


def test_unterminated_text_from_the_capture_limit_is_read_to_its_end():
    assert sql.analyze("INSERT INTO b VALUES ('abc\\").digest == "INSERT INTO b VALUES (?"
    assert sql.analyze("SELECT /* never closed").digest == "SELECT"


def test_mask_replaces_literals_only():
    text = "SELECT name FROM users /* keep */ WHERE email = 'a@b.c' AND age > 30"
    assert sql.mask(text) == "SELECT name FROM users /* keep */ WHERE email = ? AND age > ?"


def test_split_on_top_level_semicolons():
    assert sql.split("SELECT 1; SELECT ';' ; /* ; */ ;CALL p(); -- x;\n") == ["SELECT 1", "SELECT ';'", "CALL p()"]


def test_traceparent_from_sqlcommenter_comment():
    text = "SELECT 1 /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/"
    assert sql.traceparent(text) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)
    assert sql.traceparent("SELECT 1 /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00'*/")[2] is False
    assert sql.traceparent("SELECT 1") is None
    assert sql.traceparent("/*traceparent='00-" + "0" * 32 + "-b7ad6b7169203331-01'*/") is None
