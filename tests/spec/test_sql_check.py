"""`sql_validate` / `sql_compiles`: a query compiles against a schema; nothing runs, no file."""

from __future__ import annotations

from pathlib import Path

import pytest

from flujo.spec.skills import sql_compiles, sql_validate
from flujo.spec.sql_check import compile_problem, ddl_problem

SCHEMA = "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, total REAL);"


def test_a_query_that_compiles_comes_out_unchanged_and_a_wrong_one_says_why() -> None:
    assert sql_validate("  SELECT customer, sum(total) FROM orders GROUP BY customer ", SCHEMA) == (
        "SELECT customer, sum(total) FROM orders GROUP BY customer"
    )
    with pytest.raises(ValueError, match="no such column: nme"):
        sql_validate("SELECT nme FROM orders", SCHEMA)
    assert sql_compiles("SELECT 1; SELECT 2", SCHEMA) == (
        "the query does not compile: You can only execute one statement at a time."
    )


def test_nothing_reaches_a_file_or_runs_forever(tmp_path: Path) -> None:
    target = tmp_path / "x.db"
    assert "ATTACH, DETACH and PRAGMA are not allowed" in str(
        compile_problem(f"ATTACH DATABASE '{target}' AS x", SCHEMA)
    )
    assert "not allowed" in str(ddl_problem(f"ATTACH DATABASE '{target}' AS y"))
    assert not target.exists()
    forever = (
        "CREATE TABLE t(x); INSERT INTO t WITH RECURSIVE c(x) AS"
        " (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c;"
    )
    assert ddl_problem(forever) == "schema: took longer than 1 s"
    # compiling a query never runs it, however long it would run
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    assert compile_problem(endless, SCHEMA) is None
