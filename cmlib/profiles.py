"""Moved to :mod:`cmlib.book.profiles` (the book machinery lives in :mod:`cmlib.book`).

This alias keeps ``cmlib.profiles`` importing the same module object for code that is not yet
switched over (see ARCHITECTURE notes in the README); new code imports ``cmlib.book.profiles``.
"""
import sys

from .book import profiles as _module

sys.modules[__name__] = _module
