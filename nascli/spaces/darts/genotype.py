"""DARTS genotypes: the discrete architecture of the DARTS CNN space, its JSON form and a safe parser.

A cell (normal or reduce) is a list of ``(op, input)`` pairs, two per intermediate node, in node order
(quark0/darts@f276dd3 ``cnn/genotypes.py`` ``Genotype``; METHODS.md §0.1): pairs ``2k`` and ``2k+1`` feed
node ``k+2``; ``input`` is 0 (c_{k-2}), 1 (c_{k-1}) or an earlier intermediate node (``< k+2``). The cell
output concatenates the nodes listed in ``*_concat``.

The text form is the classic ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
reduce=[...], reduce_concat=[2, 3, 4, 5])``. :func:`parse_genotype` reads it with a small tokenizer and a
recursive-descent parser over literals only (strings, integers, ``None``, lists, tuples and
``range(a, b)``); it never evaluates Python code. It also accepts the AutoDL nested format (one tuple of
two pairs per node, extra ``connectN=None, connects=None`` fields; D-X-Y/AutoDL-Projects
``xautodl/nas_infer_model/DXYs/genotypes.py``), which is flattened in node order.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nascli.errors import BadArchError
from nascli.spaces.base import Arch
from nascli.spaces.darts.ops import PRIMITIVES

Pair = tuple[str, int]
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")
NUM_INPUTS = 2  # c_{k-2}, c_{k-1}
JSON_SCHEMA = 1


def _fail(msg: str) -> BadArchError:
    return BadArchError(" ".join(msg.split()))


def _check_cell(cell_type: str, pairs: Any, concat: Any, ops: Sequence[str],
                steps: int | None) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
    """Validate one cell and return it as tuples. Rules: an even, non-empty number of pairs (``2*steps``
    when ``steps`` is given); each op in ``ops``; each input of node ``n`` in ``0..n-1``; concat a
    non-empty list of distinct intermediate nodes."""
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise _fail(f"{cell_type} cell must be a non-empty list of (op, input) pairs, two per node; "
                    f"got {pairs!r}")
    if steps is not None and len(pairs) != 2 * steps:
        raise _fail(f"{cell_type} cell needs {2 * steps} (op, input) pairs ({steps} nodes x 2), "
                    f"got {len(pairs)}")
    if len(pairs) % 2:
        raise _fail(f"{cell_type} cell needs two (op, input) pairs per node, got {len(pairs)} pairs")
    n_steps = len(pairs) // 2
    out: list[Pair] = []
    for k, pair in enumerate(pairs):
        node = NUM_INPUTS + k // 2
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str)
                or not isinstance(pair[1], int) or isinstance(pair[1], bool)):
            raise _fail(f"bad {cell_type} pair {pair!r} for node {node}; expected (op_name, input_index)")
        op, src = pair[0], pair[1]
        if op not in ops:
            raise _fail(f"unknown op {op!r} in {cell_type} cell (node {node}); valid ops: {', '.join(ops)}")
        if not 0 <= src < node:
            raise _fail(f"bad input {src} for {cell_type} node {node} (op {op!r}); valid inputs: "
                        f"{', '.join(str(i) for i in range(node))}")
        out.append((op, src))
    last = NUM_INPUTS + n_steps - 1
    if (not isinstance(concat, (list, tuple, range)) or not concat
            or any(not isinstance(c, int) or isinstance(c, bool) for c in concat)):
        raise _fail(f"bad {cell_type}_concat {concat!r}; expected a list of node indices in {NUM_INPUTS}..{last}")
    concat = tuple(concat)
    for c in concat:
        if not NUM_INPUTS <= c <= last:
            raise _fail(f"bad node {c} in {cell_type}_concat; valid nodes: "
                        f"{', '.join(str(i) for i in range(NUM_INPUTS, last + 1))}")
    if len(set(concat)) != len(concat):
        raise _fail(f"repeated node in {cell_type}_concat {list(concat)}")
    return tuple(out), concat


@dataclass(frozen=True)
class DartsArch(Arch):
    """A DARTS-space genotype. Ops are checked against ``valid_ops`` (the 8 DARTS PRIMITIVES; a subclass per
    R-DARTS space, nascli/spaces/darts/rdarts.py, sets its own ``space`` and ``valid_ops``), inputs against node
    order.

    JSON (schema 1): ``{"schema": 1, "space": "darts", "normal": [[op, input], ...], "normal_concat":
    [2, 3, 4, 5], "reduce": [...], "reduce_concat": [...]}``; extra keys (provenance, scores) are ignored
    when reading.
    """

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    space = "darts"  # class attribute, not a field
    valid_ops: ClassVar[tuple[str, ...]] = PRIMITIVES

    def __post_init__(self) -> None:
        for ct in CELL_TYPES:
            pairs, concat = _check_cell(ct, getattr(self, ct), getattr(self, f"{ct}_concat"),
                                        self.valid_ops, steps=None)
            object.__setattr__(self, ct, pairs)
            object.__setattr__(self, f"{ct}_concat", concat)

    # ----- access --------------------------------------------------------------------------------
    def cell(self, cell_type: str) -> tuple[Pair, ...]:
        """The (op, input) pairs of ``cell_type`` ("normal" or "reduce"), two per node in node order."""
        if cell_type not in CELL_TYPES:
            raise ValueError(f"unknown DARTS cell type {cell_type!r}; valid: {', '.join(CELL_TYPES)}")
        return getattr(self, cell_type)

    def concat(self, cell_type: str) -> tuple[int, ...]:
        self.cell(cell_type)
        return getattr(self, f"{cell_type}_concat")

    def steps(self, cell_type: str) -> int:
        """Number of intermediate nodes of the cell."""
        return len(self.cell(cell_type)) // 2

    def edges(self, cell_type: str) -> list[tuple[int, int, str]]:
        """(src, dst, op) per chosen pair, in genotype order."""
        return [(src, NUM_INPUTS + k // 2, op) for k, (op, src) in enumerate(self.cell(cell_type))]

    # ----- serialisation -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": JSON_SCHEMA, "space": self.space}
        for ct in CELL_TYPES:
            out[ct] = [[op, src] for op, src in self.cell(ct)]
            out[f"{ct}_concat"] = list(self.concat(ct))
        return out

    def to_string(self) -> str:
        def cell(pairs: tuple[Pair, ...]) -> str:
            return "[" + ", ".join(f"({op!r}, {src})" for op, src in pairs) + "]"

        def concat(c: tuple[int, ...]) -> str:
            return "[" + ", ".join(str(i) for i in c) + "]"

        return (f"Genotype(normal={cell(self.normal)}, normal_concat={concat(self.normal_concat)}, "
                f"reduce={cell(self.reduce)}, reduce_concat={concat(self.reduce_concat)})")

    def __repr__(self) -> str:
        return f"DartsArch({self.to_string()!r})"


def arch_from_json(data: dict[str, Any], steps: int | None = 4, arch_cls: type[DartsArch] = DartsArch) -> DartsArch:
    """Inverse of :meth:`DartsArch.to_json` (checks schema and space = ``arch_cls.space``; ignores extra keys)."""
    if not isinstance(data, dict):
        raise _fail(f"DARTS arch JSON must be an object, got {type(data).__name__}")
    if data.get("schema") != JSON_SCHEMA:
        raise _fail(f"unsupported DARTS arch JSON schema {data.get('schema')!r}; valid: {JSON_SCHEMA}")
    if data.get("space") != arch_cls.space:
        raise _fail(f"arch JSON is for space {data.get('space')!r}, not {arch_cls.space!r}")
    cells: dict[str, Any] = {}
    for ct in CELL_TYPES:
        for key in (ct, f"{ct}_concat"):
            if key not in data:
                raise _fail(f"DARTS arch JSON lacks key {key!r}")
        pairs, concat = _check_cell(ct, data[ct], data[f"{ct}_concat"], arch_cls.valid_ops, steps)
        cells[ct], cells[f"{ct}_concat"] = pairs, concat
    return arch_cls(**cells)


# ----- the safe Genotype(...) text parser -------------------------------------------------------------
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'[^'\\\n]*'|"[^"\\\n]*")
  | (?P<int>[+-]?\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[()\[\],=])
""", re.VERBOSE)

_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")
_IGNORED_NONE_KEYS = ("connectN", "connects")  # AutoDL extra fields; only None is accepted


class _Parser:
    """Recursive descent over tokens; values are str, int, None, list, tuple (no code is run)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise _fail(f"bad genotype text: unexpected character {text[pos]!r} at column {pos + 1}")
            if m.lastgroup != "ws":
                self.tokens.append((m.lastgroup or "", m.group(), pos))
            pos = m.end()
        self.i = 0

    # helpers
    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise _fail("bad genotype text: unexpected end of text (unbalanced brackets?)")
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        kind, text, pos = self.take()
        if text != value:
            raise _fail(f"bad genotype text: expected {value!r} at column {pos + 1}, found {text!r}")

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value

    # grammar
    def value(self) -> Any:
        kind, text, pos = self.take()
        if kind == "str":
            return text[1:-1]
        if kind == "int":
            return int(text)
        if kind == "name" and text == "None":
            return None
        if kind == "name" and text == "range":
            args = self.sequence(close=")", opened="(")
            if not 1 <= len(args) <= 2 or any(not isinstance(a, int) for a in args):
                raise _fail(f"bad genotype text: range(...) at column {pos + 1} needs 1 or 2 integers")
            return list(range(*args))
        if text == "[":
            return self.sequence(close="]")
        if text == "(":
            items, trailing_comma = self.items(close=")")
            if len(items) == 1 and not trailing_comma:
                return items[0]  # a parenthesised value, as in Python
            return tuple(items)
        raise _fail(f"bad genotype text: unexpected token {text!r} at column {pos + 1}; expected a string, "
                    "integer, list, tuple or range(a, b)")

    def sequence(self, close: str, opened: str | None = None) -> list[Any]:
        if opened is not None:
            self.expect(opened)
        return self.items(close)[0]

    def items(self, close: str) -> tuple[list[Any], bool]:
        out: list[Any] = []
        trailing = False
        while not self.at(close):
            out.append(self.value())
            trailing = False
            if self.at(","):
                self.take()
                trailing = True
            elif not self.at(close):
                kind, text, pos = self.take()
                raise _fail(f"bad genotype text: expected ',' or {close!r} at column {pos + 1}, found {text!r}")
        self.take()
        return out, trailing

    def genotype(self) -> tuple[list[Any], dict[str, Any]]:
        # optional "NAME =" prefix, as in a genotypes.py line
        if len(self.tokens) > 1 and self.tokens[0][0] == "name" and self.tokens[1][1] == "=":
            self.i = 2
        kind, text, pos = self.take()
        if kind != "name" or text.split(".")[-1] != "Genotype":
            raise _fail(f"bad genotype text: expected 'Genotype(', found {text!r} at column {pos + 1}")
        self.expect("(")
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        while not self.at(")"):
            tok = self.peek()
            nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if tok is not None and tok[0] == "name" and nxt is not None and nxt[1] == "=":
                self.i += 2
                key = tok[1]
                if key in keywords:
                    raise _fail(f"bad genotype text: field {key!r} given twice")
                keywords[key] = self.value()
            else:
                if keywords:
                    raise _fail("bad genotype text: positional field after keyword fields")
                positional.append(self.value())
            if self.at(","):
                self.take()
            elif not self.at(")"):
                kind, text, pos = self.take()
                raise _fail(f"bad genotype text: expected ',' or ')' at column {pos + 1}, found {text!r}")
        self.take()
        if self.peek() is not None:
            kind, text, pos = self.take()
            raise _fail(f"bad genotype text: unexpected {text!r} after the closing ')' at column {pos + 1}")
        return positional, keywords


def _flatten_cell(cell_type: str, cell: Any) -> Any:
    """Accept the flat DARTS list of pairs or the AutoDL list of per-node tuples of two pairs."""
    if not isinstance(cell, (list, tuple)) or not cell:
        return cell

    def is_pair(x: Any) -> bool:
        return isinstance(x, (list, tuple)) and len(x) == 2 and isinstance(x[0], str)

    if all(is_pair(x) for x in cell):
        return list(cell)
    if all(isinstance(x, (list, tuple)) and x and all(is_pair(p) for p in x) for x in cell):
        flat: list[Any] = []
        for k, node in enumerate(cell):
            if len(node) != 2:
                raise _fail(f"{cell_type} node {NUM_INPUTS + k} has {len(node)} inputs; DARTS cells take "
                            "exactly 2 (op, input) pairs per node")
            flat.extend(node)
        return flat
    bad = next(x for x in cell if not is_pair(x))
    raise _fail(f"bad {cell_type} entry {bad!r}; expected (op_name, input_index) pairs (or per-node "
                "tuples of two pairs, AutoDL format)")


def parse_genotype(text: str, ops: Sequence[str] | None = None, steps: int | None = 4,
                   arch_cls: type[DartsArch] = DartsArch) -> DartsArch:
    """Parse ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)`` safely.

    Accepts an optional ``NAME =`` prefix, positional fields in namedtuple order, ``range(a, b)``
    concats, the AutoDL nested per-node format and its ``connectN=None, connects=None`` fields. Ops are
    checked against ``ops`` (default: ``arch_cls.valid_ops``, the 8 DARTS PRIMITIVES for :class:`DartsArch`;
    pass a subset to forbid e.g. ``none``); the result is an ``arch_cls``,
    inputs against node order, and the node count against ``steps`` (None: any). Raises BadArchError
    with a one-line message naming the bad token and the valid choices.
    """
    if not isinstance(text, str):
        raise _fail(f"genotype text must be a string, got {type(text).__name__}")
    ops = arch_cls.valid_ops if ops is None else ops
    unknown = [o for o in ops if o not in arch_cls.valid_ops]
    if unknown:
        raise ValueError(f"ops {unknown} are not ops of {arch_cls.space}; valid: {', '.join(arch_cls.valid_ops)}")
    positional, keywords = _Parser(text.strip()).genotype()
    if len(positional) > len(_KEYS):
        raise _fail(f"bad genotype text: {len(positional)} positional fields, at most {len(_KEYS)} "
                    f"({', '.join(_KEYS)})")
    fields: dict[str, Any] = dict(zip(_KEYS, positional))
    for key, value in keywords.items():
        if key in _IGNORED_NONE_KEYS:
            if value is not None:
                raise _fail(f"genotype field {key}={value!r} is not supported (only None)")
            continue
        if key not in _KEYS:
            raise _fail(f"unknown genotype field {key!r}; valid fields: {', '.join(_KEYS + _IGNORED_NONE_KEYS)}")
        if key in fields:
            raise _fail(f"bad genotype text: field {key!r} given twice")
        fields[key] = value
    missing = [k for k in _KEYS if k not in fields]
    if missing:
        raise _fail(f"genotype lacks field(s) {', '.join(missing)}")
    cells: dict[str, Any] = {}
    for ct in CELL_TYPES:
        pairs, concat = _check_cell(ct, _flatten_cell(ct, fields[ct]), fields[f"{ct}_concat"], ops, steps)
        cells[ct], cells[f"{ct}_concat"] = pairs, concat
    return arch_cls(**cells)
