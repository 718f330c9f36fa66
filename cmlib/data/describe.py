"""What a data file holds, for people: counts, ranges, schema, provenance (``cmlib info``)."""
from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from .. import schema
from .io import _Layout, _scan

# =========================================================================== describe

_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_STANDARD_ATTRS = set(schema.REQUIRED_ATTRS) | {"image_size", "seed", "generator_params"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def describe(path) -> dict:
    """Summarise a data file (simulated or imported) for ``cmlib info``.

    The file is validated exactly as by :func:`load` (same errors), streaming
    the images once to total the counts per band.

    Returns
    -------
    dict
        JSON-serialisable: ``path``, ``file_bytes``, ``schema``, ``n_clusters``,
        ``image_shape``, ``pixel_scale_arcsec``, ``field_arcmin``, ``bands``
        (number, edges, total and mean counts per cluster), ``labels``
        (quantiles of log M and z), ``catalog`` (columns with dtype, unit,
        description), ``provenance`` (source, created_with, seed, generator
        params, content hash, inputs, other attributes).
    """
    r = _scan(path, keep_images=False)
    lay: _Layout = r["layout"]
    attrs = lay.attrs
    n = lay.n
    edges = lay.band_edges
    pix = float(attrs["pixel_scale_arcsec"])
    bands = [{"band": i + 1, "E_min_eV": float(edges[i]), "E_max_eV": float(edges[i + 1]),
              "thesis_band": bool(i in schema.THESIS_BANDS and np.allclose(edges, schema.BAND_EDGES_EV)),
              "total_counts": float(r["band_sum"][i]), "mean_counts_per_cluster": float(r["band_sum"][i] / n)}
             for i in range(lay.n_bands)]

    def stats(values: np.ndarray) -> dict:
        q = np.quantile(values, _QUANTILES)
        return {"min": float(q[0]), "max": float(q[-1]), "mean": float(values.mean()),
                "std": float(values.std()),
                "quantiles": {f"{p:g}": float(v) for p, v in zip(_QUANTILES, q)}}

    inputs = {k: _jsonable(v) for k, v in attrs.items() if k.startswith("input_")}
    provenance = {
        "source": attrs.get("source"),
        "created_with": attrs.get("created_with"),
        "seed": _jsonable(attrs.get("seed")),
        "generator_params": _jsonable(_maybe_json(attrs.get("generator_params"))),
        "content_sha256": attrs.get("content_sha256"),
        "inputs": inputs,
        "other": {k: _jsonable(_maybe_json(v)) for k, v in sorted(attrs.items())
                  if k not in _STANDARD_ATTRS and not k.startswith("input_")},
    }
    return {
        "path": str(r["path"]),
        "file_bytes": int(os.path.getsize(r["path"])),
        "schema": {"name": attrs["schema"], "version": int(attrs["schema_version"])},
        "n_clusters": n,
        "image_shape": [schema.IMAGE_SIZE, schema.IMAGE_SIZE, lay.n_bands],
        "pixel_scale_arcsec": pix,
        "field_arcmin": pix * schema.IMAGE_SIZE / 60.0,
        "bands": bands,
        "total_counts_per_cluster": {"mean": float(r["band_sum"].sum() / n)},
        "labels": {"log_m500": stats(r["log_m500"]), "z": stats(r["z"])},
        "cluster_id": {"min": int(r["ids"].min()), "max": int(r["ids"].max()), "unique": True},
        "catalog": [{"name": k, "dtype": r["dtypes"][k], "unit": r["units"][k],
                     "description": r["descriptions"][k]} for k in lay.catalog_names],
        "provenance": provenance,
    }


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def format_description(info: dict) -> str:
    """Human-readable text of a :func:`describe` dict (what ``cmlib info`` prints)."""
    lines: list[str] = []
    add = lines.append
    prov = info["provenance"]
    add(f"cmlib data file  {info['path']}  ({_fmt_bytes(info['file_bytes'])})")
    add(f"  schema         {info['schema']['name']} v{info['schema']['version']}; source {prov['source']}; "
        f"written by {prov['created_with']}")
    h, w, c = info["image_shape"]
    add(f"  clusters       {info['n_clusters']}")
    add(f"  images         {h} x {w} px x {c} bands (float32 photon counts); pixel "
        f"{info['pixel_scale_arcsec']:g} arcsec, field {info['field_arcmin']:g} arcmin")
    add(f"  labels         {'quantity':<18}" + "".join(f"{q:>8}" for q in ("min", "5%", "25%", "50%", "75%",
                                                                         "95%", "max")))
    for key, label in (("log_m500", "log10 M500c/Msun"), ("z", "z")):
        q = info["labels"][key]["quantiles"]
        add(f"                 {label:<18}" + "".join(f"{q[k]:8.3f}" for k in ("0", "0.05", "0.25", "0.5",
                                                                               "0.75", "0.95", "1")))
    add(f"  bands          {'band':>4}  {'energy [eV]':<11}  {'total counts':>14}  {'mean per cluster':>16}")
    for b in info["bands"]:
        mark = "  *" if b.get("thesis_band") else ""
        energy = f"{b['E_min_eV']:.0f}-{b['E_max_eV']:.0f}"
        add(f"                 {b['band']:>4}  {energy:<11}  {b['total_counts']:>14.6g}  "
            f"{b['mean_counts_per_cluster']:>16.2f}{mark}")
    if any(b.get("thesis_band") for b in info["bands"]):
        add("                 (* = the thesis's bands 2-4, 455-1070 eV)")
    add(f"                 all bands: {info['total_counts_per_cluster']['mean']:.2f} counts per cluster on average")
    cat = info["catalog"]
    add(f"  catalog        {len(cat)} column(s)")
    width = max([len(col["name"]) for col in cat] + [4])
    for col in cat:
        unit = f"[{col['unit']}]" if col["unit"] else ""
        add(f"                 {col['name']:<{width}}  {unit:<14} {col['dtype']:<5} {col['description']}")
    add("  provenance")
    add(f"                 content sha256   {prov['content_sha256']}")
    if prov.get("seed") is not None:
        add(f"                 seed             {prov['seed']}")
    params = prov.get("generator_params")
    if params:
        import textwrap

        text = (", ".join(f"{k}={v}" for k, v in sorted(params.items())) if isinstance(params, dict)
                else str(params))
        for i, line in enumerate(textwrap.wrap(text, 84) or [""]):
            add(f"                 {'generator params' if i == 0 else '':<16} {line}")
    for key, value in sorted(prov.get("inputs", {}).items()):
        add(f"                 {key:<16} {value}")
    for key, value in sorted(prov.get("other", {}).items()):
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        if len(text) > 100:
            text = text[:97] + "..."
        add(f"                 {key:<16} {text}")
    return "\n".join(lines)
