"""numba's njit with its on-disk cache under ours, or without a cache where none can be written.

Left to itself, numba keeps compiled machine code beside the source (``__pycache__``), else in
a user-wide folder. Beside the source is wrong for an installed package: pip does not know
those files, so uninstalling leaves ``m2snet/__pycache__`` behind in site-packages, and that
leftover folder (a namespace package to Python) then shadows a later editable install for
any script run from outside the checkout. So the cache goes under ``$M2SNET_CACHE/numba``
(see cache_folder) unless the user chose a folder for numba (``NUMBA_CACHE_DIR``). Where no
folder can be written at all (a read-only install run by an account without a home folder),
decorating with ``cache=True`` raises RuntimeError at import; here that costs compile time
at each start instead, said once.
"""

from __future__ import annotations

import logging

from numba import config, njit

from kernels.cache_folder import cache_root

log = logging.getLogger("kernels")
_warned = False


def cached_njit(**options):
    """``numba.njit(cache=True, **options)``, falling back to an uncached njit."""
    def decorate(function):
        global _warned
        users_choice = config.CACHE_DIR
        # numba picks the function's cache folder while decorating; setting its option only
        # for that moment leaves other numba users in the process as they were.
        config.CACHE_DIR = users_choice or str(cache_root() / "numba")
        try:
            return njit(cache=True, **options)(function)
        except RuntimeError as error:  # numba found no folder it can write its cache to
            if not _warned:
                _warned = True
                log.warning("numba cannot cache compiled code (%s): its kernels compile again at "
                            "every start; set NUMBA_CACHE_DIR to a writable folder to keep them",
                            error)
            return njit(**options)(function)
        finally:
            config.CACHE_DIR = users_choice
    return decorate
