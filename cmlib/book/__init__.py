"""The book machinery, apart from the science library.

===================  ==========================================================================
module               what it does
===================  ==========================================================================
``build``            the build: data -> runs -> executed notebooks -> HTML, for one profile; the
                     only place that trains (``build_book``, ``train_plans``, ``train_request``,
                     ``make_stored_runs``)
``runs``             the one place that talks to the training configuration and the run
                     artifacts (``resolve_config``, ``run_dir_for``, ``find_runs``): finds runs
                     read-only, or hands a request to the trainer
``pages``            what the pages show: runs of a page (read-only), verdicts, tables,
                     provenance, the generated findings (the answer in short)
``widgets``          interactive widgets that also work in the static HTML book
``profiles``         compute budgets: what a book build trains, with how much
``handin``           a student's hand-in summary and the teacher's class table
``exercises``        the exercise sheet: goals, commands, expected ranges, executed solutions
``sphinx_ext``       a small Sphinx extension of the book (drops scripts registered twice)
``thesis``           numbers quoted from the thesis, for side-by-side comparison only
``references``       reference numbers from the literature
===================  ==========================================================================

Data flows one way: run artifacts on disk -> ``pages`` -> notebooks -> HTML. Importing a page
module never imports :mod:`cmlib.train`; only ``build`` trains, and the pages refuse with the
``cmlib train`` command that makes a missing run.

Nothing here knows where the repository is: every function takes the book root (the folder
with ``_toc.yml`` and ``notebooks/``) explicitly.
"""
from __future__ import annotations

