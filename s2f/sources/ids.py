"""Sample ids that are safe as file names, table keys and command-line arguments, whatever the source named things."""

from __future__ import annotations

import hashlib
import os
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_id(text: str) -> str:
    """`text` with every run of unsafe characters turned into `_`; a short hash of the original bytes is appended
    when anything was replaced, so two names that differ only in replaced characters stay distinct.

    Why bytes: a file name that is not valid UTF-8 reaches Python as surrogate escapes; `os.fsencode` gives back
    its real bytes, so the id is stable across runs.
    """
    cleaned = _UNSAFE.sub("_", text).strip("_.-") or "clip"  # never a leading "-" (an option)
    if cleaned == text:
        return text
    digest = hashlib.sha1(os.fsencode(text)).hexdigest()[:8]
    return f"{cleaned}-{digest}"
