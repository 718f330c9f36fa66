"""A small Sphinx extension for the book (``_config.yml``: ``sphinx.extra_extensions``).

Two fixes of what the reader's browser sees; both are checked by ``tests/test_browser.py``.

sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL = ...``) each time
Sphinx reads the sources, and Jupyter Book reads them more than once in one build: the page then
declares the constant twice and every page logs a SyntaxError (sphinx-togglebutton's selector is
repeated the same way).  This extension drops repeated scripts from each page (same file, same inline
body; an inline script's file is None or ""), keeping the first.
"""
from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, keep = set(), []
    for js in scripts:
        # an inline script is registered once with filename None and once with "" (same body)
        key = (str(getattr(js, "filename", js) or ""), str(getattr(js, "attributes", {}).get("body", "")))
        if key in seen:
            continue
        seen.add(key)
        keep.append(js)
    scripts[:] = keep


#: The vendored widget scripts (``_config.yml``: ``html_js_files``): needed only where widgets are.
WIDGET_SCRIPTS = ("vendor/require.js", "vendor/widgets-config.js", "vendor/html-manager/embed-amd.js")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _widget_scripts_where_needed(app, pagename, templatename, context, doctree) -> None:
    """Load the widget bundle only on pages with saved widgets.

    Elsewhere it does nothing useful, and its stylesheet asks for icon fonts at a path relative
    to the page that does not exist (a 404 on pages such as the exercise sheet).
    """
    scripts = context.get("script_files")
    # myst-nb adds a page's saved widget state as an inline script of that type
    if not scripts or any(getattr(js, "attributes", {}).get("type") == WIDGET_STATE for js in scripts):
        return
    scripts[:] = [js for js in scripts if not str(getattr(js, "filename", "") or "").endswith(WIDGET_SCRIPTS)]


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=100000)  # after every other handler
    app.connect("html-page-context", _widget_scripts_where_needed, priority=100001)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
