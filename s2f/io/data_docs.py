"""An index of a stage's Great Expectations Data Docs that opens with no network.

Why: GX's own `index.html` builds its table of validations with JavaScript loaded from CDNs (jQuery, Bootstrap
Table), so offline it shows an empty page; its per-validation pages are plain HTML and readable without their
styles. `shards.html` is a static table — each shard, its verdict, the failed expectations and a link to GX's page
for its latest validation — with nothing to fetch.
"""

from __future__ import annotations

import html
from pathlib import Path

OFFLINE_INDEX = "shards.html"


def latest_validation_page(docs_dir: Path, shard: str) -> str | None:
    """The path (relative to `docs_dir`) of GX's page for the newest validation of `shard`, or None."""
    pages = sorted(Path(docs_dir).glob(f"validations/*/{shard}/*/*.html"))
    return pages[-1].relative_to(docs_dir).as_posix() if pages else None


def write_offline_index(docs_dir: Path, results_dir: Path, stage: str) -> Path:
    """`docs_dir/shards.html` from the GX results the shard engine keeps in `results_dir` (one JSON per shard of the
    work folder, with its name, success and failed expectations), sorted by shard."""
    import json

    results = [json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*.json"))]
    rows = []
    for result in results:
        page = latest_validation_page(docs_dir, result["name"])
        link = f'<a href="{html.escape(page)}">GX page</a>' if page else ""
        verdict = "passed" if result["success"] else "FAILED: quarantined"
        failures = "<br>".join(html.escape(f) for f in result.get("failures", []))
        rows.append(f"<tr class=\"{'ok' if result['success'] else 'bad'}\"><td>{html.escape(result['name'])}</td>"
                    f"<td>{verdict}</td><td>{failures}</td><td>{link}</td></tr>")
    passed = sum(bool(r["success"]) for r in results)
    path = Path(docs_dir) / OFFLINE_INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(stage)}: shard validations</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}}tr.bad td{{background:#fde2e2}}
</style></head><body>
<h1>{html.escape(stage)}: Great Expectations verdicts per shard</h1>
<p>{len(results)} shards validated, {passed} passed. Each link opens GX's page for the shard's latest validation
(readable offline, unstyled); <a href="index.html">GX's own index</a> needs a network connection for its table.</p>
<table><tr><th>shard</th><th>verdict</th><th>failed expectations</th><th></th></tr>
{chr(10).join(rows)}
</table></body></html>
""", encoding="utf-8")
    return path
