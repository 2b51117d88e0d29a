"""Rewrite the code deps of every stage in dvc.yaml from its entry point's import closure (s2f.lineage).

Run after adding an import to a stage's code: `.venv/bin/python scripts/update_dvc_deps.py`. Data deps (anything
not under s2f/) are kept; a folder is named instead of its files when the closure holds every module in it.
tests/test_lineage.py fails while dvc.yaml misses a file of a closure.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from s2f.lineage import PROJECT_ROOT, relative_closure


def compress(files: list[str]) -> list[str]:
    """The files, with every subpackage whose modules are all in `files` named as one folder."""
    chosen = set(files)
    for folder in sorted({str(Path(f).parent) for f in files}, key=len):
        if folder == "s2f":
            continue
        modules = {p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / folder).rglob("*.py")}
        if modules <= set(files):
            chosen = (chosen - modules) | {folder}
    return sorted(c for c in chosen if not any(c != f and c.startswith(f + "/") for f in chosen))


def main() -> None:
    path = PROJECT_ROOT / "dvc.yaml"
    text = path.read_text()
    for name, stage in yaml.safe_load(text)["stages"].items():
        body = stage.get("do", stage)  # a foreach stage's definition is under `do:`, indented one level more
        indent = "  " if "do" in stage else ""
        data = [d for d in body.get("deps", []) if not str(d).startswith("s2f")]
        deps = compress(relative_closure(f"s2f.stages.{name}")) + data
        block = re.search(rf"\n  {name}:\n(?:.*\n)*?{indent}    deps:\n((?:{indent}      - .*\n)+)", text)
        text = text[:block.start(1)] + "".join(f"{indent}      - {d}\n" for d in deps) + text[block.end(1):]
    path.write_text(text)
    print(f"updated the code deps of {path}")


if __name__ == "__main__":
    main()
