#!/usr/bin/env python3
"""Refuses an UPDATE or DELETE that may change a whole table in one go, in the SQL files given.

One such statement in a transactional migration holds a row lock on every row it changes until
it commits, so every write of those rows waits for the whole migration; it writes a second copy
of each row in one transaction and loses all of it if it fails at the end. A statement is
bounded when its WHERE names the rows (an IN list of values, or `=` to a value) or takes at most
a batch of them (a sub-select with a LIMIT, or a slice of the key between the two settings the
migration engine sets for each batch of a `key_range`), as a batched migration's does
(docs/migrations.md, "Changing data in a big table"), and skips no locked row. Statements inside
function bodies and DO blocks are not read.

    lint-data-changes.py FILE...    # exit status 1 when any file has an unbounded one

Parsed with pglast (PostgreSQL's own parser, from PyPI), so comments, strings and dollar
quoting cannot fool it.

One exception, in a down.sql only: the undoing of a contract step puts back, at once, the column
it dropped, and says so in a `-- restore:` comment just before the statement.
"""

import sys

import pglast
from pglast import ast, enums


def nodes(node):
    """`node` and every node beneath it."""
    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from nodes(getattr(node, name))
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from nodes(item)


def constant(node):
    if isinstance(node, ast.A_Const):
        return True
    if isinstance(node, ast.TypeCast):
        return constant(node.arg)
    if isinstance(node, ast.RowExpr):
        return all(constant(arg) for arg in node.args)
    return False


def names_rows(where):
    """Whether `where` limits the rows to values it lists."""
    if isinstance(where, ast.BoolExpr) and where.boolop == enums.BoolExprType.AND_EXPR:
        return any(names_rows(arg) for arg in where.args)
    if isinstance(where, ast.A_Expr):
        if where.kind == enums.A_Expr_Kind.AEXPR_IN and isinstance(where.rexpr, (tuple, list)):
            return all(constant(value) for value in where.rexpr)
        operator = where.name[0].sval if where.name else ""
        if where.kind == enums.A_Expr_Kind.AEXPR_OP and operator == "=":
            return constant(where.lexpr) or constant(where.rexpr)
    return False


def takes_a_batch(where):
    return any(
        isinstance(node, ast.SelectStmt) and node.limitCount is not None
        for node in nodes(where)
    )


def setting(node, name):
    """Whether `node` reads the setting `name` (`current_setting('name')`, cast or not)."""
    return any(
        isinstance(call, ast.FuncCall)
        and call.funcname[-1].sval == "current_setting"
        and call.args
        and isinstance(call.args[0], ast.A_Const)
        and getattr(call.args[0].val, "sval", None) == name
        for call in nodes(node)
    )


def takes_a_slice(where):
    """Whether `where` ANDs a key at or after the batch's start with a key before its end."""
    if not (isinstance(where, ast.BoolExpr) and where.boolop == enums.BoolExprType.AND_EXPR):
        return False
    bounds = set()
    for arg in where.args:
        if isinstance(arg, ast.A_Expr) and arg.kind == enums.A_Expr_Kind.AEXPR_OP and arg.name:
            operator = arg.name[0].sval
            if operator in (">=", ">") and setting(arg.rexpr, "fleet_migrations.batch_start"):
                bounds.add("start")
            if operator == "<" and setting(arg.rexpr, "fleet_migrations.batch_end"):
                bounds.add("end")
    return bounds == {"start", "end"}


def restores(sql, start):
    """Whether the comment lines right before the statement at `start` say `-- restore:`."""
    for line in reversed(sql[:start].rstrip().splitlines()):
        line = line.strip()
        if not line.startswith("--"):
            return False
        if line[2:].strip().startswith("restore:"):
            return True
    return False


def problems(path):
    sql = open(path, encoding="utf-8").read()
    found = []
    for raw in pglast.parse_sql(sql):
        for statement in nodes(raw.stmt):
            if not isinstance(statement, (ast.UpdateStmt, ast.DeleteStmt)):
                continue
            verb = "UPDATE" if isinstance(statement, ast.UpdateStmt) else "DELETE"
            table = statement.relation.relname
            where = statement.whereClause
            skips = any(
                isinstance(node, ast.LockingClause)
                and node.waitPolicy == enums.LockWaitPolicy.LockWaitSkip
                for node in nodes(where)
            )
            if path.endswith("down.sql") and restores(sql, raw.stmt_location or 0):
                continue
            if where is not None and not skips and (
                names_rows(where) or takes_a_batch(where) or takes_a_slice(where)
            ):
                continue
            # stmt_location is where the statement's text starts, comments before it included.
            start = raw.stmt_location or 0
            text = sql[start:]
            offset = len(text) - len(text.lstrip())
            while text[offset:].startswith("--"):
                offset = text.index("\n", offset) + 1 if "\n" in text[offset:] else len(text)
                offset += len(text[offset:]) - len(text[offset:].lstrip())
            line = sql.count("\n", 0, start + offset) + 1
            if skips:
                found.append(
                    f"{path}:{line}: {verb} of {table} skips locked rows (SKIP LOCKED): a batch "
                    f"that skipped every row left would change none and record the migration "
                    f"with rows still to change; let it wait for them instead"
                )
                continue
            how = "without a WHERE" if where is None else "without a LIMIT or a list of rows"
            found.append(
                f"{path}:{line}: {verb} of {table} {how} changes every row it matches in one "
                f"transaction, holding each one's lock until it commits: make it a batched "
                f"migration whose WHERE takes a LIMIT of rows (docs/migrations.md, \"Changing data in a big "
                f"table\"), or name the rows"
            )
    return found


def main():
    found = []
    for path in sys.argv[1:]:
        found += problems(path)
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
