"""Tables of the model zoo: ``cmlib models`` and measured parameters and FLOPs.

The thesis's quoted numbers (its Table 3) are book material (:mod:`cmlib.book.thesis`);
callers pass them in (``reference_params_m``) to set them beside the measured ones.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..errors import InputError
from ..schema import IMAGE_SIZE
from . import counting
from .registry import available_models, build, get_spec


def model_table(input_shape: Sequence[int] | None = None, count_params: bool = False, *,
                reference_params_m: Mapping[str, float] | None = None) -> list[dict]:
    """One row per registered model: names, family, input shape, loss/output, reference params.

    Parameters
    ----------
    input_shape : (H, W, C), optional
        Shape to report (and count) for; default each model's recipe shape
        (basic (50, 50, 3), deep models (71, 71, 3), Krippendorf (50, 50, 10)).
    count_params : bool
        Build every model (``weights=None``) and measure its trainable parameters
        (seconds per deep model).  A model that cannot be built for the shape
        gets ``params`` None and the reason in ``note``.
    reference_params_m : mapping, optional
        Published trainable parameters [millions] per model name (e.g. the thesis's
        Table 3), shown in the ``thesis [M]`` column.
    """
    rows = []
    ref = reference_params_m or {}
    for name in available_models():
        spec = get_spec(name)
        shape = tuple(spec.default_input_shape if input_shape is None else input_shape)
        row = {
            "name": name, "display_name": spec.display_name, "family": spec.family,
            "input_shape": list(shape), "loss": spec.recipe["loss"], "output": spec.recipe["output"],
            "reference": spec.reference,
            "thesis_params_m": ref.get(name),
            "note": "",
        }
        if min(shape[:2]) < spec.min_size:
            row["note"] = f"needs at least {spec.min_size} x {spec.min_size} px"
        if count_params:
            row["params"] = None
            try:
                model = build(name, shape)
            except InputError as exc:
                row["note"] = row["note"] or str(exc).split(";")[0]
            else:
                row["params"] = counting.count_params(model)
                del model
        rows.append(row)
    return rows


def format_model_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`model_table` rows (what ``cmlib models`` prints)."""
    counted = any("params" in r for r in rows)
    noted = any(r.get("note") for r in rows)
    header = ["name", "model", "family", "input", "loss/output", "thesis [M]"]
    if counted:
        header.append("params [M]")
    if noted:
        header.append("note")
    lines = []
    for r in rows:
        cells = [r["name"], r["display_name"], r["family"], "x".join(str(v) for v in r["input_shape"]),
                 f"{r['loss']}/{r['output']}",
                 "-" if r["thesis_params_m"] is None else f"{r['thesis_params_m']:.2f}"]
        if counted:
            p = r.get("params")
            cells.append(f"{p / 1e6:.2f}" if p is not None else "n/a")
        if noted:
            cells.append(r.get("note") or "")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    right = {5, 6} if counted else {5}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines]
    out.append("")
    out.append("thesis [M]: trainable parameters in thesis Table 3 (EfficientNet-B7's 21.07 M repeats "
               "VGG19's entry).")
    out.append("Add an architecture with @cmlib.models.register (see `help(cmlib.models)`).")
    return "\n".join(out)


def measure(names: Sequence[str], input_shape: Sequence[int], *, small_side: int = IMAGE_SIZE) -> list[dict]:
    """Build each model from scratch and count its trainable parameters and FLOPs per image.

    ``input_shape`` is (H, W, C) for the deep models; the small CNNs (families basic and
    baseline) are built at ``small_side`` x ``small_side`` with the same bands, as in the thesis.
    """
    shape = tuple(int(v) for v in input_shape)
    rows = []
    for name in names:
        spec = get_spec(name)
        s = (small_side, small_side, shape[2]) if spec.family in ("basic", "baseline") else shape
        model = build(name, s)
        params = counting.count_params(model)
        flops = counting.count_flops(model, s)
        del model
        rows.append({"name": name, "display_name": spec.display_name, "input_shape": list(s), "params": params,
                     "params_m": params / 1e6, "flops": flops, "gflops": flops / 1e9})
    return rows
