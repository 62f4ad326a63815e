"""StreamGuard: function-level vulnerability detection for C code."""

from streamguard.runtime.offline import enforce_offline

enforce_offline()

__version__ = "0.1.0"
