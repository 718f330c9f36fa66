"""A small Sphinx extension for the book (``_config.yml``: ``sphinx.extra_extensions``).

sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL = ...``) each time
Sphinx reads the sources, and Jupyter Book reads them more than once in one build: the page then
declares the constant twice and every page logs a SyntaxError.  This extension drops repeated
scripts from each page (same file, same inline body), keeping the first.
"""
from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, keep = set(), []
    for js in scripts:
        key = (str(getattr(js, "filename", js)), str(getattr(js, "attributes", {}).get("body", "")))
        if key in seen:
            continue
        seen.add(key)
        keep.append(js)
    scripts[:] = keep


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
