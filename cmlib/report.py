"""Moved to :mod:`cmlib.book.pages` (the book machinery lives in :mod:`cmlib.book`).

This alias keeps ``cmlib.report`` importing the same module object for code that is not yet
switched over (see ARCHITECTURE notes in the README); new code imports ``cmlib.book.pages``.
"""
import sys

from .book import pages as _module

sys.modules[__name__] = _module
