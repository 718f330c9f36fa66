"""Moved to :mod:`cmlib.book.references` (the book machinery lives in :mod:`cmlib.book`).

This alias keeps ``cmlib.references`` importing the same module object for code that is not yet
switched over (see ARCHITECTURE notes in the README); new code imports ``cmlib.book.references``.
"""
import sys

from .book import references as _module

sys.modules[__name__] = _module
