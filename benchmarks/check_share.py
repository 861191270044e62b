"""Share of fnn/'s lines that are argument checks (a rough, reproducible measure).

    python benchmarks/check_share.py [ROOT]

A line counts as a check line when it belongs to a `raise` statement, to the test of
an `if` whose body only raises, to a statement that calls a function named
`check_*`/`require_*`/`expect_*`/`raise_*`/`validate_*` (or `_check_*`, ...), or to
the body of a function so named. The share is over the non-blank lines of ROOT
(default `fnn`). Prints the 25 files with the most check lines, then the total.
"""
import ast, pathlib, sys, re

CHECK_FN = re.compile(r"^_?(check|require|expect|raise|validate)(_|$)")
NOT_CHECKS = {"check_grads"}   # public functions whose name starts like a check but are not one

def check_lines(src: str) -> set[int]:
    tree = ast.parse(src)
    lines: set[int] = set()
    def span(n): return range(n.lineno, n.end_lineno + 1)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and CHECK_FN.match(node.name) \
                and node.name not in NOT_CHECKS:
            lines.update(span(node))
        elif isinstance(node, ast.Raise):
            lines.update(span(node))
        elif isinstance(node, ast.If) and node.body and all(isinstance(s, ast.Raise) for s in node.body):
            lines.update(range(node.lineno, node.body[0].lineno))
        elif isinstance(node, (ast.Expr, ast.Assign)) and isinstance(node.value, ast.Call):
            f = node.value.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if CHECK_FN.match(name):
                lines.update(span(node))
    return lines

def main(root="fnn"):
    total = checks = 0
    rows = []
    for f in sorted(pathlib.Path(root).rglob("*.py")):
        src = f.read_text()
        code = [i + 1 for i, l in enumerate(src.splitlines()) if l.strip()]
        c = len(check_lines(src) & set(code))
        rows.append((str(f), len(src.splitlines()), c))
        total += len(code); checks += c
    for r in sorted(rows, key=lambda r: -r[2])[:25]:
        print(f"{r[0]:40s} {r[1]:5d} lines {r[2]:4d} check")
    print(f"total non-blank {total}, check {checks} = {100*checks/total:.1f} %")
main(*sys.argv[1:])
