"""A safe parser for user-typed surfaces such as ``0.1*x**2 + sin(3*y) + abs(x*y)``.

The text is parsed with :mod:`ast` and checked node by node against a whitelist, then compiled
into a tree of small closures over torch operations. Nothing is ever passed to ``eval``: a name
that is not whitelisted cannot be reached. Numeric trouble (division by zero, log of a negative
number) is left to IEEE arithmetic and shows up as inf/nan on the grid, never as an exception.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.race.surfaces import Surface

MAX_LENGTH = 500  # characters
MAX_DEPTH = 48  # nesting of operations
MAX_NODES = 400

Env = tuple[torch.Tensor, torch.Tensor]
Node = Callable[[Env], torch.Tensor]

_VARIABLES = ("x", "y")
_CONSTANTS = {"pi": math.pi, "e": math.e}

# name -> (number of arguments (min, max), torch implementation)
_FUNCTIONS: dict[str, tuple[tuple[int, int], Callable[..., torch.Tensor]]] = {
    "sin": ((1, 1), torch.sin),
    "cos": ((1, 1), torch.cos),
    "tan": ((1, 1), torch.tan),
    "exp": ((1, 1), torch.exp),
    "log": ((1, 1), torch.log),
    "log1p": ((1, 1), torch.log1p),
    "sqrt": ((1, 1), torch.sqrt),
    "abs": ((1, 1), torch.abs),
    "tanh": ((1, 1), torch.tanh),
    "sinh": ((1, 1), torch.sinh),
    "cosh": ((1, 1), torch.cosh),
    "atan": ((1, 1), torch.atan),
    "sigmoid": ((1, 1), torch.sigmoid),
    "relu": ((1, 1), torch.relu),
    "softplus": ((1, 1), torch.nn.functional.softplus),
    "min": ((2, 8), lambda *a: _fold(torch.minimum, a)),
    "max": ((2, 8), lambda *a: _fold(torch.maximum, a)),
    "clamp": ((3, 3), lambda v, lo, hi: torch.minimum(torch.maximum(v, lo), hi)),
}

_BINARY: dict[type, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    ast.Add: torch.add,
    ast.Sub: torch.sub,
    ast.Mult: torch.mul,
    ast.Div: torch.div,
    ast.Pow: torch.pow,
}
_OPERATOR_TEXT = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
}


def _fold(op, args):
    out = args[0]
    for a in args[1:]:
        out = op(out, a)
    return out


class FormulaError(ValueError):
    """A formula the parser refuses; ``column`` is 1-based (0 when it is about the whole text)."""

    def __init__(self, message: str, column: int = 0):
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True)
class Formula:
    """A compiled formula: call it with two tensors to get a tensor of their broadcast shape."""

    text: str
    _root: Node

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = torch.broadcast_tensors(torch.as_tensor(x), torch.as_tensor(y))
        out = self._root((x, y))
        return torch.broadcast_to(out, x.shape)


def _allowed_functions() -> str:
    return ", ".join(sorted(_FUNCTIONS))


class _Compiler:
    def __init__(self, source: str, shift: int) -> None:
        self.nodes = 0
        self.source = source
        self.shift = shift  # leading spaces stripped before parsing, added back to columns

    def column(self, node: ast.AST, end: bool = False) -> int:
        offset = getattr(node, "end_col_offset" if end else "col_offset", None)
        return (offset if offset is not None else 0) + 1 + self.shift

    def compile(self, node: ast.AST, depth: int) -> Node:
        self.nodes += 1
        col = self.column(node)
        if depth > MAX_DEPTH:
            raise FormulaError(f"formula is nested too deeply at column {col}", col)
        if self.nodes > MAX_NODES:
            raise FormulaError(f"formula is too long (more than {MAX_NODES} terms)", col)
        if isinstance(node, ast.Constant):
            return self._constant(node, col)
        if isinstance(node, ast.Name):
            return self._name(node, col)
        if isinstance(node, ast.BinOp):
            return self._binop(node, col, depth)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node, col, depth)
        if isinstance(node, ast.Call):
            return self._call(node, col, depth)
        raise FormulaError(f"{_describe(node)} is not allowed at column {col}", col)

    def _constant(self, node: ast.Constant, col: int) -> Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FormulaError(f"{_describe(node)} is not allowed at column {col}", col)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise FormulaError(f"number too large at column {col}", col)
        return lambda env: torch.tensor(number, dtype=env[0].dtype, device=env[0].device)

    def _name(self, node: ast.Name, col: int) -> Node:
        if node.id == "x":
            return lambda env: env[0]
        if node.id == "y":
            return lambda env: env[1]
        if node.id in _CONSTANTS:
            number = _CONSTANTS[node.id]
            return lambda env: torch.tensor(number, dtype=env[0].dtype, device=env[0].device)
        if node.id in _FUNCTIONS:
            raise FormulaError(f"function '{node.id}' needs parentheses at column {col}", col)
        raise FormulaError(f"unknown name '{node.id}' at column {col}; allowed: x, y, pi, e", col)

    def _binop(self, node: ast.BinOp, col: int, depth: int) -> Node:
        op = _BINARY.get(type(node.op))
        if op is None:
            symbol = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
            hint = "; use ** for powers" if symbol == "^" else ""
            gap_start = self.column(node.left, end=True) - 1 - self.shift
            gap = self.source[gap_start : self.column(node.right) - 1 - self.shift]
            opcol = gap_start + (len(gap) - len(gap.lstrip(" )"))) + 1 + self.shift
            raise FormulaError(
                f"operator '{symbol}' is not allowed at column {opcol}{hint}; allowed: + - * / **",
                opcol,
            )
        left = self.compile(node.left, depth + 1)
        right = self.compile(node.right, depth + 1)
        return lambda env: op(left(env), right(env))

    def _unary(self, node: ast.UnaryOp, col: int, depth: int) -> Node:
        operand = self.compile(node.operand, depth + 1)
        if isinstance(node.op, ast.USub):
            return lambda env: torch.neg(operand(env))
        if isinstance(node.op, ast.UAdd):
            return operand
        raise FormulaError(f"{_describe(node)} is not allowed at column {col}", col)

    def _call(self, node: ast.Call, col: int, depth: int) -> Node:
        if not isinstance(node.func, ast.Name):
            raise FormulaError(f"only plain function names can be called (column {col})", col)
        name = node.func.id
        if name not in _FUNCTIONS:
            raise FormulaError(
                f"unknown function '{name}' at column {col}; allowed: {_allowed_functions()}",
                col,
            )
        if node.keywords:
            raise FormulaError(f"{name}() takes no keyword arguments (column {col})", col)
        (lo, hi), fn = _FUNCTIONS[name]
        n = len(node.args)
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            plural = "" if want == "1" else "s"
            raise FormulaError(
                f"{name}() takes {want} argument{plural}, got {n} (column {col})", col
            )
        args = [self.compile(a, depth + 1) for a in node.args]
        return lambda env: fn(*(a(env) for a in args))


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"[:60]
    return {
        ast.Compare: "a comparison",
        ast.BoolOp: "'and'/'or'",
        ast.Attribute: "attribute access ('.')",
        ast.Subscript: "indexing ('[...]')",
        ast.Lambda: "lambda",
        ast.IfExp: "'if ... else'",
        ast.Tuple: "a tuple (',')",
        ast.List: "a list",
        ast.Not: "'not'",
        ast.Invert: "'~'",
    }.get(type(node), f"'{type(node).__name__}'")


def parse_formula(text: str) -> Formula:
    """Parse and compile a formula in ``x`` and ``y``.

    Raises
    ------
    FormulaError
        With a message naming what is wrong and where (1-based column), and what is allowed.
    """
    if not isinstance(text, str):
        raise FormulaError("formula must be text")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is too long ({len(text)} characters; at most {MAX_LENGTH})")
    stripped = text.strip()
    if not stripped:
        raise FormulaError("formula is empty; type an expression in x and y, e.g. x**2 + y**2")
    # Leading spaces shift columns; strip only trailing ones and newlines.
    source = text.rstrip()
    if "\n" in source or "\r" in source:
        raise FormulaError("formula must be a single line")
    source = source.lstrip()
    shift = len(text) - len(text.lstrip())
    try:
        with warnings.catch_warnings():
            # e.g. "invalid decimal literal" for "1x": the user sees our error instead
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        reason = (exc.msg or "invalid syntax").split(" (")[0]
        offset = exc.offset or 0
        if offset <= 0 or offset > len(source):
            offset = len(source) + 1
            if reason.startswith("invalid syntax") or "EOF" in reason:
                reason = "unexpected end of formula"
        col = offset + shift
        raise FormulaError(f"syntax error at column {col}: {reason}", col) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        # null bytes, overlong integer literals, parser stack exhaustion
        raise FormulaError(f"cannot read formula: {str(exc)[:80]}") from None
    root = _Compiler(source, shift).compile(tree.body, 0)
    return Formula(text=stripped, _root=root)


BOUND_LIMIT = 1e6  # largest |bound| of a formula's plot


def formula_surface(
    text: str,
    bounds: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0),
    start: tuple[float, float] | None = None,
) -> Surface:
    """A :class:`Surface` from a formula; bounds and start are the user's choice."""
    xmin, xmax, ymin, ymax = (float(b) for b in bounds)
    if not all(math.isfinite(b) for b in (xmin, xmax, ymin, ymax)):
        raise FormulaError("plot bounds must be finite numbers")
    if not (xmin < xmax and ymin < ymax):
        raise FormulaError(f"plot bounds are empty: x {xmin} .. {xmax}, y {ymin} .. {ymax}")
    if max(abs(xmin), abs(xmax), abs(ymin), abs(ymax)) > BOUND_LIMIT:
        # beyond it x**2 overflows, the racers diverge at their start and the axes go blank
        raise FormulaError(f"plot bounds must lie within -{BOUND_LIMIT:g} .. {BOUND_LIMIT:g}")
    formula = parse_formula(text)
    _check_somewhere_finite(formula, (xmin, xmax, ymin, ymax))
    if start is None:
        start = (xmin + 0.8 * (xmax - xmin), ymin + 0.75 * (ymax - ymin))
    return Surface(
        key="formula",
        name="Formula",
        fn=formula,
        bounds=(xmin, xmax, ymin, ymax),
        start=(float(start[0]), float(start[1])),
        minima=(),
        scale="linear",
        formula=formula.text,
        caption="Your own surface.",
    )


def _check_somewhere_finite(formula: Formula, bounds: tuple[float, float, float, float]) -> None:
    """A surface that is NaN or infinite all over its bounds (``1/0*x``) draws nothing and
    makes every racer diverge at once: say so where the formula was typed."""
    xmin, xmax, ymin, ymax = bounds
    xs = torch.linspace(xmin, xmax, 33, dtype=torch.float64)
    x, y = torch.meshgrid(xs, torch.linspace(ymin, ymax, 33, dtype=torch.float64), indexing="xy")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = torch.as_tensor(formula(x, y), dtype=torch.float64)
    if not bool(torch.isfinite(values).any()):
        raise FormulaError(
            "the formula is not a finite number anywhere in the plot bounds (a division by "
            "zero, the log of a negative number, ...): nothing to draw or descend"
        )


__all__ = ["Formula", "FormulaError", "formula_surface", "parse_formula"]
