"""``$((...))``: the integer arithmetic sh scripts use for counters (``i=$((i+1))``).

A small recursive-descent evaluator over integers, never ``eval``: the expression comes from
whoever runs ``kubectl exec``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class ArithmeticSyntaxError(Exception):
    """``$((...))`` that sh would reject."""


_ARITHMETIC_TOKEN = re.compile(
    r"\s*(?:(\d+)|([A-Za-z_][A-Za-z_0-9]*)|(\*\*|<=|>=|==|!=|&&|\|\||[-+*/%()<>!]))"
)


def evaluate_arithmetic(expression: str, variables: Mapping[str, str]) -> int:
    """Integer arithmetic as ``$((...))`` does it: + - * / % ** comparisons, && || !, parentheses,
    and variable names read as numbers (unset or empty is 0)."""
    tokens: list[str] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _ARITHMETIC_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ArithmeticSyntaxError(expression)
        number, name, operator = match.groups()
        if name is not None:
            raw = variables.get(name, "") or "0"
            if not raw.lstrip("-").isdigit():
                raise ArithmeticSyntaxError(expression)
            tokens.append(raw)
        else:
            tokens.append(number if number is not None else operator)
        position = match.end()
    return _ArithmeticParser(tokens, expression).parse()


class _ArithmeticParser:
    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!="),
        ("<", "<=", ">", ">="),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def __init__(self, tokens: list[str], source: str) -> None:
        self.tokens = tokens
        self.index = 0
        self.source = source

    def parse(self) -> int:
        value = self.level(0)
        if self.index != len(self.tokens):
            raise ArithmeticSyntaxError(self.source)
        return value

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def level(self, depth: int) -> int:
        if depth == len(self._LEVELS):
            return self.power()
        value = self.level(depth + 1)
        while self.peek() in self._LEVELS[depth]:
            operator = self.tokens[self.index]
            self.index += 1
            value = self.apply(operator, value, self.level(depth + 1))
        return value

    def power(self) -> int:
        base = self.unary()
        if self.peek() == "**":
            self.index += 1
            exponent = self.power()
            if exponent < 0 or exponent > 64:
                raise ArithmeticSyntaxError(self.source)
            return int(base**exponent)
        return base

    def unary(self) -> int:
        token = self.peek()
        if token in ("-", "+", "!"):
            self.index += 1
            value = self.unary()
            return -value if token == "-" else (value if token == "+" else int(not value))
        if token == "(":
            self.index += 1
            value = self.level(0)
            if self.peek() != ")":
                raise ArithmeticSyntaxError(self.source)
            self.index += 1
            return value
        if token is None or not token.lstrip("-").isdigit():
            raise ArithmeticSyntaxError(self.source)
        self.index += 1
        return int(token)

    def apply(self, operator: str, left: int, right: int) -> int:
        if operator in ("/", "%"):
            if right == 0:
                raise ArithmeticSyntaxError("division by zero")
            quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
            return quotient if operator == "/" else left - quotient * right
        results = {
            "+": left + right,
            "-": left - right,
            "*": left * right,
            "==": int(left == right),
            "!=": int(left != right),
            "<": int(left < right),
            "<=": int(left <= right),
            ">": int(left > right),
            ">=": int(left >= right),
            "&&": int(bool(left) and bool(right)),
            "||": int(bool(left) or bool(right)),
        }
        return results[operator]
