"""Tables of the model zoo: ``cmlib models`` and the thesis's Table 3 reproduced."""
from __future__ import annotations

from typing import Sequence

from .. import thesis
from ..errors import InputError
from ..schema import IMAGE_SIZE
from . import counting
from .registry import THESIS_PARAMS_INCONSISTENT, THESIS_PADDED_SIZE, available_models, build, get_spec


def model_table(input_shape: Sequence[int] | None = None, count_params: bool = False) -> list[dict]:
    """One row per registered model: names, family, input shape, loss/output, Table 3 params.

    Parameters
    ----------
    input_shape : (H, W, C), optional
        Shape to report (and count) for; default each model's recipe shape
        (basic (50, 50, 3), deep models (71, 71, 3), Krippendorf (50, 50, 10)).
    count_params : bool
        Build every model (``weights=None``) and measure its trainable parameters
        (seconds per deep model).  A model that cannot be built for the shape
        gets ``params`` None and the reason in ``note``.
    """
    rows = []
    for name in available_models():
        spec = get_spec(name)
        shape = tuple(spec.default_input_shape if input_shape is None else input_shape)
        t3 = thesis.TABLE3.get(name)
        row = {
            "name": name, "display_name": spec.display_name, "family": spec.family,
            "input_shape": list(shape), "loss": spec.recipe["loss"], "output": spec.recipe["output"],
            "reference": spec.reference,
            "thesis_params_m": None if t3 is None else t3["params_m"],
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


def table3(input_shape: Sequence[int] = (THESIS_PADDED_SIZE, THESIS_PADDED_SIZE, 3)) -> list[dict]:
    """Thesis Table 3 reproduced: trainable parameters and FLOPs of each thesis model.

    Every model of :data:`cmlib.thesis.TABLE3` is built from scratch in the
    thesis configuration (``input_shape``, default 71 x 71 x 3, Flatten head,
    Dense 512; the basic CNN at 50 x 50 with the same bands) and its trainable
    parameters are set beside the thesis's, with the relative difference
    ``measured / thesis - 1``.  ``thesis_consistent`` is False where the thesis's
    entry does not describe its own architecture (EfficientNet-B7: 21.07 M
    repeats VGG19's row; ``note`` says so).  Times per epoch are measured by
    ``benchmarks/bench_models.py``, not here.
    """
    shape = tuple(int(v) for v in input_shape)
    rows = []
    for name, entry in thesis.TABLE3.items():
        spec = get_spec(name)
        s = (IMAGE_SIZE, IMAGE_SIZE, shape[2]) if name == "basic" else shape
        model = build(name, s)
        params = counting.count_params(model)
        flops = counting.count_flops(model, s)
        del model
        rows.append({
            "name": name, "display_name": spec.display_name, "input_shape": list(s),
            "params": params, "params_m": params / 1e6, "thesis_params_m": entry["params_m"],
            "rel_diff": params / 1e6 / entry["params_m"] - 1.0,
            "thesis_consistent": name not in THESIS_PARAMS_INCONSISTENT,
            "flops": flops, "gflops": flops / 1e9,
            "thesis_epoch_s_gpu": entry["epoch_s"],
            "note": thesis.TABLE3_NOTES.get(name, "") if name in THESIS_PARAMS_INCONSISTENT else "",
        })
    return rows
