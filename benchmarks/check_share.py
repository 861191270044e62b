"""Share of fnn/'s lines that are argument checks (a rough, reproducible measure).

    python benchmarks/check_share.py [ROOT]

A line counts as a check line when it belongs to a `raise` statement, to the test of
an `if` whose body only raises, to a statement that calls a function named
`check_*`/`require_*`/`expect_*`/`raise_*`/`validate_*` (or `_check_*`, ...), or to
the body of a function so named. The share is over the non-blank lines of ROOT
(default `fnn`). Prints the 25 files with the most check lines, then the total.
"""
from __future__ import annotations

import ast
import pathlib
import re
import sys

CHECK_FN = re.compile(r"^_?(check|require|expect|raise|validate)(_|$)")
NOT_CHECKS = {"check_grads"}   # public functions whose name starts like a check but are not one


def _span(node: ast.AST) -> range:
    return range(node.lineno, node.end_lineno + 1)


def _called_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def check_lines(src: str) -> set[int]:
    """The line numbers of `src` that are argument checks (see the module docstring)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.FunctionDef):
            if CHECK_FN.match(node.name) and node.name not in NOT_CHECKS:
                lines.update(_span(node))
        elif isinstance(node, ast.Raise):
            lines.update(_span(node))
        elif isinstance(node, ast.If):
            if node.body and all(isinstance(s, ast.Raise) for s in node.body):
                lines.update(range(node.lineno, node.body[0].lineno))
        elif isinstance(node, (ast.Expr, ast.Assign)) and isinstance(node.value, ast.Call):
            if CHECK_FN.match(_called_name(node.value)):
                lines.update(_span(node))
    return lines


def main(root: str = "fnn") -> None:
    total = checks = 0
    rows = []
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        src = path.read_text()
        code = {i + 1 for i, line in enumerate(src.splitlines()) if line.strip()}
        n_check = len(check_lines(src) & code)
        rows.append((str(path), len(src.splitlines()), n_check))
        total += len(code)
        checks += n_check
    for name, n_lines, n_check in sorted(rows, key=lambda r: -r[2])[:25]:
        print(f"{name:40s} {n_lines:5d} lines {n_check:4d} check")
    print(f"total non-blank {total}, check {checks} = {100 * checks / total:.1f} %")


if __name__ == "__main__":
    main(*sys.argv[1:])
