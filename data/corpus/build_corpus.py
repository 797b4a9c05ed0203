"""Rebuilds python-docstrings.txt from the docstrings of this machine's Python standard library.

Run with the Python 3.11 that ships on the machine: python3 data/corpus/build_corpus.py
Each document is one docstring (of a module, class or function), so document lengths are
naturally long-tailed: many short ones, a few of several thousand bytes. Documents are separated by a line holding only
the form-feed character (\f), which never occurs inside them.
"""

import ast
import sys
import sysconfig
from pathlib import Path

LIMIT = 900_000  # bytes; keeps the corpus under 1 MB
SKIP = ("test", "idlelib", "lib2to3", "turtledemo", "tkinter", "ensurepip", "site-packages",
        "dist-packages", "__pycache__")


def module_docstrings(path: Path) -> str:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return ""
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) > 80:
                texts.append(doc.replace("\f", " "))
    return "\n\f\n".join(texts)


def main() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out, size = [], 0
    for path in sorted(stdlib.rglob("*.py")):
        if any(part in SKIP for part in path.relative_to(stdlib).parts):
            continue
        text = module_docstrings(path)
        if not text.isascii() or len(text) < 200:
            continue
        if size + len(text) > LIMIT:
            break
        out.append(text)
        size += len(text) + 2
    target = Path(__file__).with_name("python-docstrings.txt")
    target.write_text("\n\f\n".join(out) + "\n")
    documents = sum(text.count("\n\f\n") + 1 for text in out)
    print(f"{documents} documents from {len(out)} modules, {target.stat().st_size} bytes, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
