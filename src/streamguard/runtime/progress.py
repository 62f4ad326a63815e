"""Progress bars that suit both a terminal and a log file.

On a terminal the bar refreshes smoothly; when stderr is a file or a pipe (CI logs, ``kedro run >
run.log``) it prints at most one line every ``LOG_INTERVAL_S`` seconds instead of hundreds of carriage-
return updates.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

LOG_INTERVAL_S = 30.0


def progress(iterable: Iterable[Any], **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` with a refresh interval chosen for where stderr goes."""
    from tqdm import tqdm  # not tqdm.auto: its asyncio variant calls iter() eagerly (an extra DataLoader pass)

    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.1 if interactive else LOG_INTERVAL_S)
    return tqdm(iterable, **kwargs)
