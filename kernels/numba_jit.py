"""numba's njit with its on-disk cache where numba can write one, without it where it cannot.

numba keeps compiled machine code beside the source (``__pycache__``) or in a user-wide folder
(``NUMBA_CACHE_DIR``, else ~/.cache). With ``cache=True`` and neither writable (a read-only
install run by an account without a home folder), decorating raises RuntimeError at import,
and everything importing the module fails. Here that costs compile time at each start instead,
said once.
"""

from __future__ import annotations

import logging

from numba import njit

log = logging.getLogger("kernels")
_warned = False


def cached_njit(**options):
    """``numba.njit(cache=True, **options)``, falling back to an uncached njit."""
    def decorate(function):
        global _warned
        try:
            return njit(cache=True, **options)(function)
        except RuntimeError as error:  # numba found no folder it can write its cache to
            if not _warned:
                _warned = True
                log.warning("numba cannot cache compiled code (%s): its kernels compile again at "
                            "every start; set NUMBA_CACHE_DIR to a writable folder to keep them",
                            error)
            return njit(**options)(function)
    return decorate
