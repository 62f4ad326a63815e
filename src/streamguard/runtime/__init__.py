"""Process environment: offline switches, quiet third-party logs, progress bars, atomic file writes.

May import: nothing from streamguard (every other package may import it).
"""
