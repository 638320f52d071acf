"""Spark SQL DDL read without a JVM, so that a schema or type with a typo stops the command
when the configuration loads (exit 2, naming the key) rather than when the job runs.

Covers what tables declare: ``name[:] TYPE [COLLATE c] [NOT NULL] [COMMENT '...']``
column lists, and the types Spark's DDL parser knows (scalars, DECIMAL(p, s),
CHAR/VARCHAR(n), ARRAY<>, MAP<,>, STRUCT<name: type, ...>). Where it is unsure it lets a
schema through: Spark still reads it when the job starts.
"""

from __future__ import annotations

import re

SCALARS = {
    "BOOLEAN", "TINYINT", "BYTE", "SMALLINT", "SHORT", "INT", "INTEGER", "BIGINT", "LONG",
    "FLOAT", "REAL", "DOUBLE", "DATE", "TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ",
    "STRING", "BINARY", "VARIANT", "VOID", "DECIMAL", "DEC", "NUMERIC", "CHAR", "VARCHAR",
    "TIME",
}  # fmt: skip
SIZED = {"DECIMAL": (1, 2), "DEC": (1, 2), "NUMERIC": (1, 2), "CHAR": (1, 1), "VARCHAR": (1, 1)}
TOKEN = re.compile(r"""\s*(`(?:[^`]|``)+`|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\w+|[<>(),:])""")
MAX_DECIMAL_PRECISION = 38


class DdlError(ValueError):
    """The DDL does not parse; the message says where."""


class Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[str] = []
        position = 0
        while position < len(text.rstrip()):
            match = TOKEN.match(text, position)
            if match is None:
                raise DdlError(f"unexpected {text[position:].strip()[:20]!r}")
            self.items.append(match.group(1))
            position = match.end()
        self.index = 0

    def peek(self) -> str:
        return self.items[self.index] if self.index < len(self.items) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if not token or (expected is not None and token.upper() != expected):
            found = repr(token) if token else "the end"
            raise DdlError(f"expected {expected or 'more'} but found {found}")
        self.index += 1
        return token


def columns(ddl: str) -> list[tuple[str, str]]:
    """The (name, TYPE) pairs of a column list such as ``id STRING, n DECIMAL(12,2)``."""
    tokens = Tokens(ddl)
    found: list[tuple[str, str]] = []
    while True:
        name, kind = field(tokens)
        if name.lower() in {seen.lower() for seen, _ in found}:
            raise DdlError(f"column {name} is declared twice")
        found.append((name, kind))
        if not tokens.peek():
            return found
        tokens.take(",")


def field(tokens: Tokens) -> tuple[str, str]:
    """One ``name[:] TYPE [NOT NULL] [COMMENT '...']`` of a column list or a struct."""
    name = identifier(tokens)
    if tokens.peek() == ":":
        tokens.take()
    kind = data_type(tokens)
    if tokens.peek().upper() == "NOT":
        tokens.take()
        tokens.take("NULL")
    if tokens.peek().upper() == "COMMENT":
        tokens.take()
        if not tokens.take().startswith(("'", '"')):
            raise DdlError(f"{name}: COMMENT needs a quoted string")
    return name, kind


def parse_type(text: str) -> str:
    """``text`` as one data type, normalised; raises DdlError if Spark would not read it."""
    tokens = Tokens(text)
    parsed = data_type(tokens)
    if tokens.peek():
        raise DdlError(f"unexpected {tokens.peek()!r} after the type {parsed}")
    return parsed


def identifier(tokens: Tokens) -> str:
    token = tokens.take()
    if token.startswith("`"):
        return token[1:-1].replace("``", "`")
    if not (token[0].isalnum() or token[0] == "_"):
        raise DdlError(f"expected a column name but found {token!r}")
    return token


def data_type(tokens: Tokens) -> str:
    name = tokens.take().upper()
    if name == "ARRAY":
        tokens.take("<")
        element = data_type(tokens)
        tokens.take(">")
        return f"ARRAY<{element}>"
    if name == "MAP":
        tokens.take("<")
        key = data_type(tokens)
        tokens.take(",")
        value = data_type(tokens)
        tokens.take(">")
        return f"MAP<{key}, {value}>"
    if name == "STRUCT":
        return struct_type(tokens)
    if name not in SCALARS:
        raise DdlError(f"unknown data type {name!r}")
    spelled = name
    if name in SIZED and tokens.peek() == "(":
        spelled = f"{name}({','.join(str(n) for n in sizes(tokens, name))})"
    elif name in ("CHAR", "VARCHAR"):
        raise DdlError(f"{name} needs a length, e.g. {name}(10)")
    if tokens.peek().upper() == "COLLATE":
        tokens.take()
        spelled += f" COLLATE {identifier(tokens)}"
    return spelled


def sizes(tokens: Tokens, name: str) -> list[int]:
    """The numbers in DECIMAL(p, s) or VARCHAR(n), checked as Spark checks them."""
    least, most = SIZED[name]
    tokens.take("(")
    numbers = [tokens.take()]
    while tokens.peek() == ",":
        tokens.take()
        numbers.append(tokens.take())
    tokens.take(")")
    if not least <= len(numbers) <= most or not all(n.isdigit() for n in numbers):
        raise DdlError(f"{name} takes {most} number(s) in parentheses")
    values = [int(n) for n in numbers]
    if name in ("CHAR", "VARCHAR") and values[0] < 1:
        raise DdlError(f"{name} needs a length of at least 1")
    if name not in ("CHAR", "VARCHAR"):
        precision, scale = values[0], values[1] if len(values) > 1 else 0
        if not 1 <= precision <= MAX_DECIMAL_PRECISION or scale > precision:
            raise DdlError(
                f"{name}({precision},{scale}): precision runs from 1 to "
                f"{MAX_DECIMAL_PRECISION} and the scale may not exceed it"
            )
    return values


def struct_type(tokens: Tokens) -> str:
    tokens.take("<")
    fields = []
    while tokens.peek() != ">":
        name, kind = field(tokens)
        fields.append(f"{name}: {kind}")
        if tokens.peek() == ",":
            tokens.take()
    tokens.take(">")
    return f"STRUCT<{', '.join(fields)}>"


def expression_columns(expr: str) -> set[str]:
    """The top-level columns a Spark SQL boolean expression reads (lambda variables of
    higher-order functions left out); raises DdlError if it does not parse."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        parsed = sqlglot.parse_one(expr, read="spark")
    except ParseError as exc:
        first = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", str(exc).splitlines()[0])
        raise DdlError(f"not a Spark SQL expression: {first}") from None
    if isinstance(parsed, exp.Query | exp.Command | exp.DDL | exp.DML):
        raise DdlError("a rule expression is one condition, not a statement")
    return {column.parts[0].name.lower() for column in parsed.find_all(exp.Column)}
