"""Formulas over other metrics: `+ - * /`, numbers, parentheses and metric names.

Parsed with Python's own expression parser and then restricted to that grammar, so precedence and
parentheses behave as everyone expects. Evaluation is pure: a division by zero, or any operand
without a value, gives no value (None).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, DivisionByZero, InvalidOperation

Number = int | float | Decimal

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

# + - * are exact whatever the operands' size; only a division rounds, to 28 significant digits.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_DIVISION = Context(prec=28, Emax=MAX_EMAX, Emin=MIN_EMIN)


class FormulaError(ValueError):
    """The formula is not `+ - * /` over numbers, parentheses and metric names."""


@dataclass(frozen=True)
class Formula:
    text: str
    tree: ast.expr

    @property
    def operands(self) -> list[str]:
        """Metric names in order of first appearance."""
        names = sorted(
            (node for node in ast.walk(self.tree) if isinstance(node, ast.Name)),
            key=lambda node: node.col_offset,
        )
        return list(dict.fromkeys(node.id for node in names))

    def evaluate(self, values: Mapping[str, Number | None]) -> Decimal | None:
        """The value for these operand values; None where an operand has none or a divisor is 0."""
        try:
            return _eval(self.tree, values)
        except (DivisionByZero, InvalidOperation, ZeroDivisionError):
            return None


class _NoValue(Exception):
    pass


def _eval(node: ast.expr, values: Mapping[str, Number | None]) -> Decimal | None:
    try:
        return _eval_node(node, values)
    except _NoValue:
        return None


def _eval_node(node: ast.expr, values: Mapping[str, Number | None]) -> Decimal:
    if isinstance(node, ast.Constant):
        return Decimal(str(node.value))
    if isinstance(node, ast.Name):
        value = values.get(node.id)
        if value is None:
            raise _NoValue
        return value if isinstance(value, Decimal) else Decimal(str(value))
    if isinstance(node, ast.UnaryOp):
        operand = _eval_node(node.operand, values)
        return _EXACT.minus(operand) if isinstance(node.op, ast.USub) else operand
    assert isinstance(node, ast.BinOp)
    left, right = _eval_node(node.left, values), _eval_node(node.right, values)
    if isinstance(node.op, ast.Add):
        return _EXACT.add(left, right)
    if isinstance(node.op, ast.Sub):
        return _EXACT.subtract(left, right)
    if isinstance(node.op, ast.Mult):
        return _EXACT.multiply(left, right)
    if right == 0:
        raise _NoValue
    return _DIVISION.divide(left, right)


def parse_formula(text: str) -> Formula:
    """Parse and check a formula; FormulaError says what is not allowed and where."""
    try:
        tree = ast.parse(str(text).strip(), mode="eval").body
    except SyntaxError as exc:
        raise FormulaError(
            f"formula {text!r} does not parse (at column {exc.offset}): use metric names, "
            "numbers, + - * / and parentheses"
        ) from None
    for node in ast.walk(tree):
        allowed = (
            (isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS)
            or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd))
            or isinstance(node, ast.Name)
            or (
                isinstance(node, ast.Constant)
                and isinstance(node.value, int | float)
                and not isinstance(node.value, bool)
            )
            or isinstance(node, ast.operator | ast.unaryop | ast.expr_context)
        )
        if not allowed:
            shown = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
            raise FormulaError(
                f"formula {text!r} uses {shown!r}, "
                "which is not allowed: only metric names, numbers, + - * / and parentheses"
            )
    return Formula(text=str(text).strip(), tree=tree)
