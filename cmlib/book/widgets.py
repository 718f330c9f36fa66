"""Interactive widgets that also work in the static HTML book, without a kernel.

In the built book there is no Python kernel, so callbacks (``interact``,
``observe``) cannot run.  What does run is the widget JavaScript that myst-nb
embeds with the widget state saved in the executed notebook.  The widgets
here therefore pre-render every page (a PNG and an HTML table) and put them
in a :class:`ipywidgets.Stack` whose ``selected_index`` is linked *in the
browser* (``jslink``) to a selector's ``index``.  The same widgets work in a
live notebook; live-only variants that render any cluster on demand are
provided as well (``*_live``).

Keep static collections small (tens of pages): their state is inlined in
the page.
"""
from __future__ import annotations

import html
from typing import Callable, Mapping, Sequence

import numpy as np

from ..metrics import Predictions


def _w():
    import ipywidgets

    return ipywidgets


def png_image(png: bytes, width: str | None = None):
    """An ``ipywidgets.Image`` showing PNG bytes (never wider than its container: phones)."""
    w = _w()
    layout = w.Layout(width=width, max_width="100%", height="auto") if width else w.Layout(max_width="100%")
    return w.Image(value=png, format="png", layout=layout)


def html_table(rows: Sequence[tuple[str, str]], *, css_class: str = "cmlib-table") -> str:
    """A two-column key/value HTML table (values are escaped)."""
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="{css_class}">{body}</table>'


def static_selector(labels: Sequence[str], pages: Sequence, *, description: str = "",
                    kind: str = "dropdown", width: str = "32em"):
    """A selector (dropdown or slider) that switches between pre-rendered ``pages``.

    The link between the selector and the pages is made in the browser, so
    it keeps working in the static HTML.  Returns a ``VBox([selector, stack])``;
    the selector is ``box.children[0]`` and the stack ``box.children[1]``.
    """
    w = _w()
    if len(labels) != len(pages) or not labels:
        raise ValueError("static_selector needs one label per page and at least one page")
    style = {"description_width": "initial"}
    if kind == "dropdown":
        sel = w.Dropdown(options=list(labels), index=0, description=description, style=style,
                         layout=w.Layout(width=width, max_width="100%"))
    elif kind == "slider":
        sel = w.SelectionSlider(options=list(labels), index=0, description=description, style=style,
                                continuous_update=True, layout=w.Layout(width=width, max_width="100%"))
    else:
        raise ValueError("kind must be 'dropdown' or 'slider'")
    stack = w.Stack(list(pages), selected_index=0)
    w.jslink((sel, "index"), (stack, "selected_index"))
    return w.VBox([sel, stack])


def static_grid_selector(row_labels: Sequence[str], col_labels: Sequence[str],
                         page: Callable[[int, int], object], *, row_description: str = "",
                         col_description: str = "", kind: str = "slider", width: str = "32em"):
    """Two selectors (e.g. temperature and redshift) over a grid of pre-rendered pages.

    ``page(i, j)`` returns the widget for row ``i`` and column ``j``.  Built as
    an outer stack over rows whose inner stacks (one per row) are all linked to
    the column selector, so no kernel is needed.
    """
    w = _w()
    style = {"description_width": "initial"}
    mk = (lambda labels, d: w.SelectionSlider(options=list(labels), index=0, description=d, style=style,
                                              layout=w.Layout(width=width))) if kind == "slider" else \
         (lambda labels, d: w.Dropdown(options=list(labels), index=0, description=d, style=style,
                                       layout=w.Layout(width=width)))
    rsel, csel = mk(row_labels, row_description), mk(col_labels, col_description)
    inner = []
    for i in range(len(row_labels)):
        st = w.Stack([page(i, j) for j in range(len(col_labels))], selected_index=0)
        w.jslink((csel, "index"), (st, "selected_index"))
        inner.append(st)
    outer = w.Stack(inner, selected_index=0)
    w.jslink((rsel, "index"), (outer, "selected_index"))
    return w.VBox([rsel, csel, outer])


# ---------------------------------------------------------------- the predictions explorer

def curated_clusters(p: Predictions, *, mass_bins: Sequence[float] = (13.0, 13.5, 14.0, 14.5, 15.0),
                     ) -> list[tuple[int, str]]:
    """Indices into ``p`` of the best, median and worst prediction per mass bin, with labels."""
    absx = np.abs(p.x)
    out: list[tuple[int, str]] = []
    for lo, hi in zip(mass_bins[:-1], mass_bins[1:]):
        idx = np.flatnonzero((p.true >= lo) & (p.true < hi) & np.isfinite(absx))
        if idx.size == 0:
            continue
        order = idx[np.argsort(absx[idx], kind="stable")]
        picks = [("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])]
        seen = set()
        for name, i in picks:
            if i in seen:
                continue
            seen.add(i)
            out.append((int(i), f"{lo:.1f}\u2013{hi:.1f}: {name}"))
    return out


def _cluster_page(image_png: bytes, rows: Sequence[tuple[str, str]]):
    w = _w()
    # flex-wrap: on a narrow screen (a phone, 420 px) the table goes below the image instead of off-screen
    return w.HBox([png_image(image_png, width="460px"), w.HTML(html_table(rows))],
                  layout=w.Layout(align_items="center", flex_flow="row wrap", max_width="100%"))


def predictions_explorer(models: Mapping[str, Predictions], render_cluster: Callable[[int], bytes],
                         scatter_png: Callable[[str, Predictions, Sequence[int]], bytes], *,
                         display_names: Mapping[str, str] | None = None, notes: Mapping[str, str] | None = None):
    """The static predictions explorer of the book.

    Pick a model, then one of its curated test clusters (best, median and worst
    per mass bin) to see its band images with the true and predicted mass;
    above them, the true-vs-predicted scatter of all test clusters of that
    model with the curated ones numbered.

    ``models`` maps a model name to its test-set predictions;
    ``render_cluster(cluster_id)`` returns PNG bytes of that cluster's images;
    ``scatter_png(model, preds, curated_indices)`` returns the scatter as PNG.
    """
    w = _w()
    names = display_names or {}
    model_pages, labels = [], []
    cache: dict[int, bytes] = {}
    for m, p in models.items():
        cur = curated_clusters(p)
        idxs = [i for i, _ in cur]
        cluster_pages, cluster_labels = [], []
        for k, (i, lab) in enumerate(cur, start=1):
            cid = int(p.cluster_id[i])
            if cid not in cache:
                cache[cid] = render_cluster(cid)
            rows = [("model", names.get(m, m)), ("cluster id", cid),
                    ("redshift z", f"{p.z[i]:.3f}" if p.z is not None else "n/a"),
                    ("true log M500", f"{p.true[i]:.3f}"),
                    ("predicted log M500", f"{p.pred[i]:.3f}" + (f" \u00b1 {p.sigma[i]:.3f}" if p.sigma is not None else "")),
                    ("x = pred \u2212 true", f"{p.x[i]:+.3f} dex"),
                    ("selected as", lab)]
            cluster_pages.append(_cluster_page(cache[cid], rows))
            cluster_labels.append(f"#{k}  {lab}  (id {cid})")
        head = w.HTML(f"<b>{html.escape(names.get(m, m))}</b>" +
                      (f" <span class='provenance'>{html.escape(notes[m])}</span>" if notes and m in notes else ""))
        scatter = png_image(scatter_png(m, p, idxs), width="440px")
        model_pages.append(w.VBox([head, scatter, static_selector(cluster_labels, cluster_pages,
                                                                   description="cluster:", width="30em")]))
        labels.append(names.get(m, m))
    return static_selector(labels, model_pages, description="model:", width="24em")


def predictions_explorer_live(models: Mapping[str, Predictions], render_cluster: Callable[[int], bytes], *,
                              display_names: Mapping[str, str] | None = None):
    """The explorer for a live notebook: any test cluster of any model (needs a running kernel).

    Pick a model and type or choose any cluster id of its test set; the band
    images and the true and predicted masses are rendered on demand.
    """
    w = _w()
    names = display_names or {}
    keys = list(models)
    msel = w.Dropdown(options=[(names.get(m, m), m) for m in keys], description="model:")
    first = models[keys[0]]
    csel = w.Combobox(options=[str(int(c)) for c in first.cluster_id], value=str(int(first.cluster_id[0])),
                      description="cluster id:", ensure_option=True)
    out = w.Output()

    def show(*_):
        p = models[msel.value]
        csel.options = [str(int(c)) for c in p.cluster_id]
        try:
            cid = int(csel.value)
        except ValueError:
            return
        hit = np.flatnonzero(p.cluster_id == cid)
        out.clear_output(wait=True)
        with out:
            from IPython.display import HTML, display

            if hit.size == 0:
                display(HTML(f"<p>cluster {cid} is not in the test set of {html.escape(msel.value)}</p>"))
                return
            i = int(hit[0])
            rows = [("cluster id", cid), ("redshift z", f"{p.z[i]:.3f}" if p.z is not None else "n/a"),
                    ("true log M500", f"{p.true[i]:.3f}"),
                    ("predicted log M500", f"{p.pred[i]:.3f}" + (f" \u00b1 {p.sigma[i]:.3f}" if p.sigma is not None else "")),
                    ("x = pred \u2212 true", f"{p.x[i]:+.3f} dex")]
            display(_cluster_page(render_cluster(cid), rows))

    msel.observe(show, names="value")
    csel.observe(show, names="value")
    show()
    return w.VBox([w.HBox([msel, csel]), out])
