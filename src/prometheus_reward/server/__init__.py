"""The reward server: ``prometheus-reward serve`` or ``python -m prometheus_reward.server``.

:mod:`.app` builds the FastAPI app (:func:`create_app`, :class:`ServerConfig`), :mod:`.batching`
merges concurrent requests into judge calls, :mod:`.metrics` counts what happens.
"""

from .app import CompareRequest, GradeRequest, GroupRequest, RewardRequest, ServerConfig, create_app
from .batching import MicroBatcher
from .metrics import ServerMetrics

__all__ = ["CompareRequest", "GradeRequest", "GroupRequest", "MicroBatcher", "RewardRequest", "ServerConfig", "ServerMetrics", "create_app"]
