"""Moved to :mod:`cmlib.book.thesis` (the book machinery lives in :mod:`cmlib.book`).

This alias keeps ``cmlib.thesis`` importing the same module object for code that is not yet
switched over (see ARCHITECTURE notes in the README); new code imports ``cmlib.book.thesis``.
"""
import sys

from .book import thesis as _module

sys.modules[__name__] = _module
