"""The reward server: ``prometheus-reward serve`` or ``python -m prometheus_reward.server``.

:mod:`.app` builds the FastAPI app (:func:`create_app`), whose endpoints score through the reward
classes; :mod:`.config` declares its options (:class:`ServerConfig`); :mod:`.batching` merges
concurrent requests into judge calls; :mod:`.metrics` counts what happens. The app's names load
on first use, so that reading the options does not import FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import ServerConfig

_LAZY = {"CompareRequest": ".app", "GradeRequest": ".app", "GroupRequest": ".app", "RewardRequest": ".app",
         "create_app": ".app", "MicroBatcher": ".batching", "ServerMetrics": ".metrics"}

__all__ = ["CompareRequest", "GradeRequest", "GroupRequest", "MicroBatcher", "RewardRequest", "ServerConfig", "ServerMetrics", "create_app"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
