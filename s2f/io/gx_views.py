"""Great Expectations' Data Docs page views with their compiled templates kept between runs.

Why: GX makes a new jinja environment for every page view, so each Data Docs build compiled its ~50 templates
anew: about 0.1 s of the 0.15 s a build takes, paid once per stage run, while the other workers sit idle at the end
of the run (issue 14's 1 → 2 process scaling). jinja's bytecode cache keeps each compiled template in a file under
the system's temporary folder (jinja's own default: `_jinja2-cache-<uid>`, private to the user), keyed by the
template's name and a checksum of its source, so another GX version's templates never match. The pages are the
same: only how the templates are loaded changes. `s2f.validation.ShardValidator.build_data_docs` names these
classes in its site configuration; GX imports this module only then.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from great_expectations.render.view.view import DefaultJinjaIndexPageView, DefaultJinjaPageView


@lru_cache(maxsize=1)
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """jinja's default cache folder, or none when that folder cannot be used (another user's, wrong permissions):
    pages then compile as before, and the stage never fails for want of a cache."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


class _CachedTemplates:
    """Mixed into a GX view: its jinja environment loads compiled templates from the cache."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _bytecode_cache()


class CachedJinjaPageView(_CachedTemplates, DefaultJinjaPageView):
    """A suite's or a validation's page (GX's view), with compiled templates cached."""


class CachedJinjaIndexPageView(_CachedTemplates, DefaultJinjaIndexPageView):
    """The site's index page (GX's view), with compiled templates cached."""


def site_views() -> dict:
    """The parts of a GX site configuration that make every page use these views."""
    page = {"view": {"module_name": __name__, "class_name": CachedJinjaPageView.__name__}}
    return {"site_section_builders": {"expectations": page, "validations": page, "profiling": page},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                   "view": {"module_name": __name__, "class_name": CachedJinjaIndexPageView.__name__}}}
