"""Which source files a result depends on: the import closure of a module inside the `s2f` package.

Why: two things must agree with the code that really ran. DVC decides a stage is stale from its `deps` in
`dvc.yaml`, and a resumable stage decides whether a finished shard or a checkpoint may be reused from a hash of
its code. Both used hand-written file lists, and both drifted (a changed module left results standing that it
would have changed). Here the list is derived: every `import s2f...` / `from s2f... import` / relative import
anywhere in a module (function-level imports included), followed transitively. A test checks that every
stage's `dvc.yaml` deps cover the closure of its entry point, and fingerprints hash exactly the closure.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "s2f"
PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def module_file(module: str) -> Path | None:
    """`s2f.io.media` → …/s2f/io/media.py (or the package's `__init__.py`); None outside the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PROJECT_ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imported(path: Path) -> set[str]:
    """Every module name an `import` statement in `path` may load (both `pkg.name` and `pkg` for `from pkg import
    name`, since `name` may be a submodule or an attribute)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _with_parents(module: str) -> list[str]:
    """Importing `s2f.io.media` runs `s2f/__init__.py` and `s2f/io/__init__.py` first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=None)
def import_closure(module: str) -> tuple[Path, ...]:
    """The s2f source files `module` loads, directly or transitively, sorted; the module's own file first among
    them. Raises ValueError for a module that is not in the package."""
    if module_file(module) is None:
        raise ValueError(f"{module!r} is not a module of the {PACKAGE} package")
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        for parent in _with_parents(name):
            path = module_file(parent)
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(n for n in _imported(path) if n.split(".")[0] == PACKAGE)
    return tuple(sorted(seen))


def closure_hash(*modules: str) -> str:
    """A sha256 over the path and text of every file in the closures of `modules`: the code a result depends on."""
    files = sorted({f for m in modules for f in import_closure(m)})
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def relative_closure(module: str) -> list[str]:
    """The closure as project-relative POSIX paths (what `dvc.yaml` deps name)."""
    return [p.relative_to(PROJECT_ROOT).as_posix() for p in import_closure(module)]


if __name__ == "__main__":  # `python -m s2f.lineage s2f.stages.features` prints a stage's closure
    import sys

    for name in sys.argv[1:]:
        print(f"{name}:", *relative_closure(name), sep="\n  ")
