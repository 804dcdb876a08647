"""The optional compiled inner loops (``classifier/_native.c``).

``pip install`` builds them when a C compiler is there; without one the package installs and runs
the same code paths in Python and numpy, with the same results (``tests/test_native.py`` holds
every compiled function to its Python twin, bit for bit). ``GROUPSCORE_NATIVE=0`` in the
environment turns them off, to compare the two.
"""

from __future__ import annotations

import os
from types import ModuleType

try:
    from . import _native as _compiled
except ImportError:  # built without a compiler, or from a source tree never built
    _compiled = None

_enabled = os.environ.get("GROUPSCORE_NATIVE", "1") != "0"


def module() -> ModuleType | None:
    """The compiled module, or None when it is not built or turned off."""
    return _compiled if _enabled else None


def built() -> bool:
    """Whether the compiled module was built and imports (whatever the switch says)."""
    return _compiled is not None


def set_enabled(on: bool) -> bool:
    """Turn the compiled paths on or off for this process; returns the previous setting."""
    global _enabled
    was, _enabled = _enabled, bool(on)
    return was
