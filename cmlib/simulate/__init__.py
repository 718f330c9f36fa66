"""The mock eFEDS cluster catalogue: population, X-ray images and data files.

The thesis's simulations (the eFEDS mock of Liu et al. 2022 with the cluster
model of Comparat et al. 2020) are not public, so cmlib generates a physically
motivated stand-in, locally and deterministically.  Mass reaches the images the
way it does in real survey data: through the luminosity (L_X-M relation), the
angular size (R500 and the distance) and, weakly, the spectral shape (kT-M),
blurred by intrinsic scatter, morphology, photon noise, background, point
sources and the instrument.  Every physical component has an on/off switch in
:class:`SimulationParams`, so the book can show what each one adds.  Every
number is a documented choice with its source in the book's fact sheet
(``book/physics_facts.md``, cited as "facts N").

Modules (one concept each):

* :mod:`.params` - :class:`SimulationParams` (default, unit, doc, source and validator per field);
* :mod:`.population` - haloes, scaling relations, morphology, exposure, selection;
* :mod:`.selection` - the eSASS-like detection + extent likelihoods (physics v2);
* :mod:`.render` - photons, PSF, background, AGN, binning, smoothing;
* :mod:`.files` - in-memory catalogues and atomic, streamed HDF5 files.

Physics versions: ``v2`` (default, :data:`PHYSICS_VERSION`) and ``v1`` (the
first mock, selectable with ``SimulationParams.v1()`` or ``cmlib simulate
--physics v1``; same seed -> the same clusters and images as before v2).

Reproducibility: the population of N clusters is drawn from fixed-size
candidate batches, each with its own counter-based stream
``Philox(key=[seed, 2**63 + batch])`` (v2 detection photons from
``[seed, 2**63 + 2**62 + batch]``); each cluster's image then uses its own
stream ``Philox(key=[seed, cluster_id])``.  So results do not depend on the
chunk size, the first n clusters of a run with N > n are exactly the run with
n, and a file is byte-identical for the same seed and chunk size.
"""
from .files import (CATALOG_COLUMNS, CATALOG_COLUMNS_V2, SimulatedCatalog, Terminated, catalog_columns, simulate,
                    simulate_to_file)
from .params import (PHYSICS_MODEL_VERSION, PHYSICS_VERSION, PHYSICS_VERSIONS, V1_DEFAULTS, SimulationParams,
                     format_parameter_table, params_to_dict, parse_parameters)
from .population import (MAX_CLUSTERS, MAX_IN_MEMORY, MORPHOLOGY_CODES, conversion, draw_population,
                         lnl_morph)
from .render import background_per_pixel, render_images, smooth_images

__all__ = [
    "CATALOG_COLUMNS", "CATALOG_COLUMNS_V2", "MAX_CLUSTERS", "MAX_IN_MEMORY", "MORPHOLOGY_CODES",
    "PHYSICS_MODEL_VERSION", "PHYSICS_VERSION", "PHYSICS_VERSIONS", "SimulatedCatalog", "SimulationParams",
    "Terminated", "V1_DEFAULTS", "background_per_pixel", "catalog_columns", "conversion", "draw_population",
    "format_parameter_table", "lnl_morph", "params_to_dict", "parse_parameters", "render_images", "simulate",
    "simulate_to_file", "smooth_images",
]
