"""Moved to :mod:`cmlib.book.widgets` (the book machinery lives in :mod:`cmlib.book`).

This alias keeps ``cmlib.widgets`` importing the same module object for code that is not yet
switched over (see ARCHITECTURE notes in the README); new code imports ``cmlib.book.widgets``.
"""
import sys

from .book import widgets as _module

sys.modules[__name__] = _module
