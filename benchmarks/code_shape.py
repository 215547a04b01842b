"""The shape of the charging core: module sizes, methods per class, longest functions.

    python -m benchmarks.code_shape [PACKAGE_DIR] [--at REVISION]   (default: agent/core)

``--at`` measures the package as committed at a git revision (e.g. the one before a
redesign), for before/after figures.

Prints one table per measure. STYLE.md's aims: no core module over ~400 lines, no class over
~25 methods, most function bodies under ~15 lines. Counts are physical lines of the source
(docstrings included), measured with the standard library's ``ast``.
"""

from __future__ import annotations

import argparse
import ast
import io
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    start = first.lineno
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and len(node.body) > 1:
        start = node.body[1].lineno  # the docstring is not body
    return (node.end_lineno or start) - start + 1


def measure(package: Path, base: Path = ROOT) -> dict[str, object]:
    modules, classes, functions = [], [], []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        name = str(path.relative_to(base))
        modules.append((len(text.splitlines()), name))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                methods = [n for n in node.body
                           if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
                classes.append((len(methods), f"{name}:{node.name}"))
        for fn in _functions(tree):
            functions.append((_body_lines(fn), f"{name}:{fn.lineno} {fn.name}"))
    return {"modules": modules, "classes": classes, "functions": functions}


def report(package: Path, base: Path = ROOT, label: str = "") -> None:
    shape = measure(package, base)
    modules = sorted(shape["modules"], reverse=True)  # type: ignore[call-overload]
    classes = sorted(shape["classes"], reverse=True)  # type: ignore[call-overload]
    functions = sorted(shape["functions"], reverse=True)  # type: ignore[call-overload]
    lines = sum(m[0] for m in modules)
    print(f"{package.relative_to(base)}{label}: {len(modules)} modules, {lines} lines,"
          f" {len(classes)} classes, {len(functions)} functions")
    print("\nlargest modules (lines):")
    for lines, name in modules[:6]:
        print(f"  {lines:5d}  {name}")
    print("\nclasses with most methods:")
    for count, name in classes[:6]:
        print(f"  {count:5d}  {name}")
    bodies = [f[0] for f in functions]
    share = sum(1 for b in bodies if b < 15) / len(bodies)
    print(f"\nfunction bodies: median {statistics.median(bodies):.0f} lines, "
          f"{share:.0%} under 15 lines; longest:")
    for lines, name in functions[:6]:
        print(f"  {lines:5d}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default="agent/core")
    parser.add_argument("--at", metavar="REVISION", help="measure a committed revision")
    args = parser.parse_args()
    if args.at is None:
        report(ROOT / args.package)
        return
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.at, args.package],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
        report(Path(tmp) / args.package, Path(tmp), f" at {args.at}")


if __name__ == "__main__":
    main()
