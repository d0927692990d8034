"""The QBO query language subset ([queries]): tokenizer, parser and evaluator.

Grammar::

    SELECT (* | COUNT(*)) FROM <Entity>
        [WHERE <cond> [AND <cond>]...]
        [ORDERBY | ORDER BY <prop> [ASC|DESC] [, ...]]
        [STARTPOSITION n] [MAXRESULTS n]
    <cond> := <prop> (= | < | > | <= | >=) <literal>
            | <prop> IN (<literal>, ...)
            | <prop> LIKE '<pattern with % wildcards>'

Keywords are case-insensitive, entity names are case-sensitive. Literals are single-quoted
with ``\\'`` and ``\\\\`` escapes, or bare numbers/booleans. Smart punctuation anywhere is a
lexical error, as production raises ([queries]).

Sources:
[queries] Intuit, data queries:
    https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from qbo_client.emulator import errors
from qbo_client.emulator.clock import parse_datetime
from qbo_client.emulator.rules import NAME_ENTITY_SPECS

JsonDict = dict[str, Any]

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

# Entities the emulator stores; any other known QBO entity is valid but always empty.
KNOWN_EMPTY_ENTITIES = frozenset(
    {
        "Account",
        "Attachable",
        "Bill",
        "BillPayment",
        "Class",
        "CreditMemo",
        "CustomerType",
        "CompanyCurrency",
        "Department",
        "Deposit",
        "Estimate",
        "ExchangeRate",
        "Invoice",
        "Item",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "TaxCode",
        "TaxRate",
        "Term",
        "TimeActivity",
        "Transfer",
        "VendorCredit",
        "CreditCardPayment",
        "RecurringTransaction",
    }
)
QUERYABLE_ENTITIES = frozenset({*NAME_ENTITY_SPECS, "CompanyInfo"})

# Curly quotes, low quotes, en and em dashes ([queries]).
_SMART_PUNCTUATION = frozenset("\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u2013\u2014")
_KEYWORDS = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "ORDER",
        "BY",
        "ORDERBY",
        "ASC",
        "DESC",
        "STARTPOSITION",
        "MAXRESULTS",
        "IN",
        "LIKE",
        "COUNT",
        "NOT",
        "IS",
        "NULL",
    }
)
_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT_CHARS = re.compile(r"[A-Za-z0-9_.]")


@dataclass(frozen=True)
class Token:
    kind: str  # KEYWORD, IDENT, STRING, NUMBER, OP, PUNCT, EOF
    value: str
    column: int


@dataclass(frozen=True)
class Condition:
    prop: str
    op: str  # = < > <= >= IN LIKE
    values: tuple[Any, ...]


@dataclass
class Query:
    entity: str
    count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (prop, descending)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


def tokenize(statement: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    length = len(statement)
    while i < length:
        ch = statement[i]
        column = i + 1
        if ch in _SMART_PUNCTUATION:
            raise _lexical_error(statement, i)
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            value, i = _read_string(statement, i)
            tokens.append(Token("STRING", value, column))
            continue
        if ch.isdigit() or (ch == "-" and i + 1 < length and statement[i + 1].isdigit()):
            j = i + 1
            while j < length and (statement[j].isdigit() or statement[j] == "."):
                j += 1
            tokens.append(Token("NUMBER", statement[i:j], column))
            i = j
            continue
        if _IDENT_START.match(ch):
            j = i + 1
            while j < length and _IDENT_CHARS.match(statement[j]):
                j += 1
            word = statement[i:j]
            kind = "KEYWORD" if word.upper() in _KEYWORDS else "IDENT"
            tokens.append(Token(kind, word.upper() if kind == "KEYWORD" else word, column))
            i = j
            continue
        if ch in "<>!":
            if i + 1 < length and statement[i + 1] in "=>":
                tokens.append(Token("OP", statement[i : i + 2], column))
                i += 2
            else:
                tokens.append(Token("OP", ch, column))
                i += 1
            continue
        if ch == "=":
            tokens.append(Token("OP", ch, column))
            i += 1
            continue
        if ch in "(),*":
            tokens.append(Token("PUNCT", ch, column))
            i += 1
            continue
        raise _lexical_error(statement, i)
    tokens.append(Token("EOF", "<EOF>", length + 1))
    return tokens


def _read_string(statement: str, start: int) -> tuple[str, int]:
    """Read a single-quoted literal; ``\\x`` stands for ``x`` (so ``\\'`` and ``\\\\``)."""
    out: list[str] = []
    i = start + 1
    while i < len(statement):
        ch = statement[i]
        if ch in _SMART_PUNCTUATION:
            raise _lexical_error(statement, i)
        if ch == "\\":
            if i + 1 >= len(statement):
                break
            nxt = statement[i + 1]
            if nxt in _SMART_PUNCTUATION:
                raise _lexical_error(statement, i + 1)
            out.append(nxt)
            i += 2
            continue
        if ch == "'":
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise errors.query_parse_error(
        f"Invalid content. Lexical error at line 1, column {len(statement) + 1}.  "
        'Encountered: <EOF> after : "' + statement[start:][:40] + '"'
    )


def _lexical_error(statement: str, index: int) -> errors.QboFault:
    ch = statement[index]
    before = statement[max(0, index - 20) : index]
    return errors.query_parse_error(
        f"Invalid content. Lexical error at line 1, column {index + 1}.  "
        f'Encountered: "\\u{ord(ch):04x}" ({ord(ch)}), after : "{before}"'
    )


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "EOF":
            self.pos += 1
        return token

    def fail(self, expecting: Iterable[str]) -> errors.QboFault:
        token = self.current
        shown = token.value if token.kind != "STRING" else f"'{token.value}'"
        wanted = "\n    ".join(expecting)
        return errors.query_parse_error(
            f'Encountered " {token.kind} "{shown} "" at line 1, column {token.column}.\n'
            f"Was expecting one of:\n    {wanted}"
        )

    def expect_keyword(self, *words: str) -> str:
        token = self.current
        if token.kind == "KEYWORD" and token.value in words:
            self.advance()
            return token.value
        raise self.fail(words)

    def expect_punct(self, value: str) -> None:
        if self.current.kind == "PUNCT" and self.current.value == value:
            self.advance()
            return
        raise self.fail([f'"{value}"'])

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "KEYWORD" and self.current.value in words

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count = False
        if self.at_keyword("COUNT"):
            self.advance()
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        elif self.current.kind == "PUNCT" and self.current.value == "*":
            self.advance()
        else:
            # Projections are not supported by this emulator ([queries] lists none).
            raise self.fail(['"*"', '"count"'])
        self.expect_keyword("FROM")
        if self.current.kind != "IDENT":
            raise self.fail(["<IDENTIFIER>"])
        query = Query(entity=self.advance().value, count=count)
        if self.at_keyword("WHERE"):
            self.advance()
            query.conditions.append(self.condition())
            while self.at_keyword("AND"):
                self.advance()
                query.conditions.append(self.condition())
        if self.at_keyword("ORDERBY", "ORDER"):
            if self.advance().value == "ORDER":
                self.expect_keyword("BY")
            query.order_by.append(self.order_item())
            while self.current.kind == "PUNCT" and self.current.value == ",":
                self.advance()
                query.order_by.append(self.order_item())
        seen: set[str] = set()
        while self.at_keyword("STARTPOSITION", "MAXRESULTS") and self.current.value not in seen:
            word = self.advance().value
            seen.add(word)
            if self.current.kind != "NUMBER":
                raise self.fail(["<INTEGER>"])
            number = int(float(self.advance().value))
            if word == "STARTPOSITION":
                query.start_position = max(1, number)
            else:
                # Larger values are capped at 1000 ([queries]; whether production errors
                # instead is unverified).
                query.max_results = max(0, min(number, MAX_MAX_RESULTS))
        if self.current.kind != "EOF":
            raise self.fail(["<EOF>", "<AND>", '"orderby"', '"startposition"', '"maxresults"'])
        return query

    def order_item(self) -> tuple[str, bool]:
        if self.current.kind != "IDENT":
            raise self.fail(["<IDENTIFIER>"])
        prop = self.advance().value
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().value == "DESC"
        return prop, descending

    def condition(self) -> Condition:
        if self.current.kind != "IDENT":
            raise self.fail(["<IDENTIFIER>"])
        prop = self.advance().value
        token = self.current
        if token.kind == "OP" and token.value in ("=", "<", ">", "<=", ">="):
            self.advance()
            return Condition(prop, token.value, (self.literal(),))
        if self.at_keyword("IN"):
            self.advance()
            self.expect_punct("(")
            values = [self.literal()]
            while self.current.kind == "PUNCT" and self.current.value == ",":
                self.advance()
                values.append(self.literal())
            self.expect_punct(")")
            return Condition(prop, "IN", tuple(values))
        if self.at_keyword("LIKE"):
            self.advance()
            if self.current.kind != "STRING":
                raise self.fail(["<STRING>"])
            return Condition(prop, "LIKE", (self.advance().value,))
        raise self.fail(['"="', '"<"', '">"', '"<="', '">="', '"in"', '"like"'])

    def literal(self) -> Any:
        token = self.current
        if token.kind == "STRING":
            self.advance()
            return token.value
        if token.kind == "NUMBER":
            self.advance()
            return float(token.value) if "." in token.value else int(token.value)
        if token.kind == "IDENT" and token.value.lower() in ("true", "false"):
            self.advance()
            return token.value.lower() == "true"
        raise self.fail(["<STRING>", "<INTEGER>", "<BOOLEAN>"])


def parse(statement: str) -> Query:
    if not statement.strip():
        raise errors.query_parse_error("The query provided was empty")
    return _Parser(tokenize(statement)).parse()


# --- evaluation ---

_NUMERIC_PROPS = frozenset({"Id", "Balance", "BalanceWithJobs", "Level", "BillRate", "CostRate"})
_DATETIME_PROPS = frozenset({"MetaData.CreateTime", "MetaData.LastUpdatedTime"})
# Nested objects compared through one member (ParentRef.value, PrimaryEmailAddr.Address).
_NESTED_SCALAR = {"ParentRef": "value", "PrimaryEmailAddr": "Address", "CurrencyRef": "value"}


def validate(query: Query, fields_for: Callable[[str], frozenset[str] | None]) -> None:
    """Reject unknown entities and properties (code 4001; exact production wording differs)."""
    known = fields_for(query.entity)
    if known is None:
        raise errors.query_validation_error(f"Invalid context declaration : {query.entity}")
    for prop in [c.prop for c in query.conditions] + [p for p, _ in query.order_by]:
        root = prop.split(".", 1)[0]
        if prop in _DATETIME_PROPS or prop == "Id":
            continue
        if root not in known or ("." in prop and root not in _NESTED_SCALAR and root != "MetaData"):
            raise errors.query_validation_error(
                f"property '{prop}' is not queryable for entity {query.entity}"
            )


def _prop_value(entity: JsonDict, prop: str) -> Any:
    if prop in _NESTED_SCALAR:
        nested = entity.get(prop)
        return nested.get(_NESTED_SCALAR[prop]) if isinstance(nested, dict) else None
    value: Any = entity
    for part in prop.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _sort_key(prop: str, value: Any) -> tuple[int, Any]:
    """Comparable key; missing values sort first."""
    if value is None:
        return (0, "")
    if prop in _DATETIME_PROPS or (prop.startswith("MetaData.") and isinstance(value, str)):
        parsed = parse_datetime(str(value))
        return (1, parsed.timestamp() if parsed else 0.0)
    if prop in _NUMERIC_PROPS or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        try:
            return (1, float(value))
        except (TypeError, ValueError):
            return (1, 0.0)
    if isinstance(value, bool):
        return (1, int(value))
    # String comparisons ignore case, like SQL Server's default collation (unverified; [queries]).
    return (1, str(value).casefold())


def _literal_key(prop: str, literal: Any) -> tuple[int, Any]:
    if prop in _DATETIME_PROPS:
        parsed: datetime | None = parse_datetime(str(literal))
        if parsed is None:
            raise errors.query_parse_error(f"Invalid date/time value for {prop}: {literal}")
        return (1, parsed.timestamp())
    if prop in _NUMERIC_PROPS or (
        isinstance(literal, (int, float)) and not isinstance(literal, bool)
    ):
        try:
            return (1, float(literal))
        except (TypeError, ValueError):
            raise errors.query_parse_error(f"Invalid number value for {prop}: {literal}") from None
    if isinstance(literal, bool):
        return (1, int(literal))
    if (
        isinstance(literal, str)
        and literal.lower() in ("true", "false")
        and prop
        in ("Active", "Job", "BillWithParent", "Taxable", "IsProject", "Vendor1099", "BillableTime")
    ):
        return (1, int(literal.lower() == "true"))
    return (1, str(literal).casefold())


@lru_cache(maxsize=1024)
def _literal_keys(prop: str, literals: tuple[Any, ...]) -> frozenset[tuple[int, Any]]:
    """An ``IN`` list's keys, computed once per query instead of once per entity."""
    return frozenset(_literal_key(prop, literal) for literal in literals)


def _like_regex(pattern: str) -> re.Pattern[str]:
    # Only % is a wildcard ([queries]).
    parts = [re.escape(p) for p in pattern.split("%")]
    return re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _matches(entity: JsonDict, condition: Condition) -> bool:
    try:
        return _compare(entity, condition)
    except TypeError:  # e.g. a number literal against a text property
        return False


def _compare(entity: JsonDict, condition: Condition) -> bool:
    value = _prop_value(entity, condition.prop)
    if condition.op == "LIKE":
        return value is not None and bool(_like_regex(str(condition.values[0])).match(str(value)))
    if value is None:
        return False
    key = _sort_key(condition.prop, value)
    if condition.op == "IN":
        return key in _literal_keys(condition.prop, condition.values)
    other = _literal_key(condition.prop, condition.values[0])
    if condition.op == "=":
        return key == other
    if condition.op == "<":
        return key < other
    if condition.op == ">":
        return key > other
    if condition.op == "<=":
        return key <= other
    return key >= other


def _order_key(prop: str) -> Callable[[JsonDict], tuple[int, Any]]:
    def key(entity: JsonDict) -> tuple[int, Any]:
        return _sort_key(prop, _prop_value(entity, prop))

    return key


def execute(query: Query, entities: Iterable[JsonDict], *, has_active: bool) -> JsonDict:
    """Run a parsed query; returns the ``QueryResponse`` object (without the envelope)."""
    conditions = list(query.conditions)
    # SELECT * FROM Customer returns active rows only unless the query filters on Active
    # itself ([queries]).
    if has_active and not any(c.prop == "Active" for c in conditions):
        conditions.append(Condition("Active", "=", (True,)))
    rows = [e for e in entities if all(_matches(e, c) for c in conditions)]
    if query.count:
        return {"totalCount": len(rows)}
    rows.sort(key=lambda e: _sort_key("Id", e.get("Id")))
    # Stable sorts from the last key to the first give a multi-key ORDERBY.
    for prop, descending in reversed(query.order_by):
        rows.sort(key=_order_key(prop), reverse=descending)
    start = query.start_position - 1
    page = rows[start : start + query.max_results]
    if not page:
        # "QueryResponse is {} with no Customer key" ([queries]).
        return {}
    return {query.entity: page, "startPosition": query.start_position, "maxResults": len(page)}
