"""The reward server's options, declared once: how rows are judged is a
:class:`~prometheus_reward.config.JudgingConfig`, what the rewards do with the judgments a
:class:`~prometheus_reward.config.RewardConfig` (rubric, shape, normalisation, the reward of
unscorable rows: ``fallback``); :class:`ServerConfig` adds only the serving knobs, and
``prometheus-reward serve`` derives its options from the three.

Kept free of FastAPI so that the command line can list the options without importing the server.

Example:
    >>> config = ServerConfig(reward=RewardConfig(normalize="symmetric"), token="s3cret")
    >>> config.reward.normalize, config.judging.mode, config.max_body_bytes
    ('symmetric', 'expected', 16777216)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import JudgingConfig, RewardConfig, check, option


@dataclass
class ServerConfig:
    """Serving knobs (see ``prometheus-reward serve --help``), plus the judging and reward configs."""

    judging: JudgingConfig = option(help="how each row is judged", default_factory=JudgingConfig, cli=False)
    reward: RewardConfig = option(help="what the rewards do with the judgments", default_factory=RewardConfig,
                                  cli=False)
    labels_as_reference: bool = option(True, "use OpenRLHF labels as reference answers (--no-labels-as-reference "
                                       "ignores them)")
    token: str | None = option(None, "require 'Authorization: Bearer TOKEN' (or set PROMETHEUS_REWARD_TOKEN)")
    max_batch_rows: int = option(64, "rows merged into one judge call")
    max_merge_tokens: int = option(65536, "estimated tokens merged into one judge call (--max-batch-tokens is the "
                                   "backend's budget)")
    max_wait_ms: float = option(10.0, "how long a batch waits to fill")
    workers: int | None = option(None, "judge calls in parallel (default 1 for a local model, 4 for HTTP upstreams)")
    max_request_rows: int = option(4096, "rows one request may carry")
    max_body_mb: float = option(16.0, "request body limit in MiB")

    def __post_init__(self) -> None:
        check(self)
        for name in ("max_batch_rows", "max_merge_tokens", "max_request_rows", "workers", "max_body_mb"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {self.max_wait_ms!r}")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)

    @property
    def normalize(self) -> str:
        """The rewards' normalisation (``reward.normalize``)."""
        return self.reward.normalize

    @property
    def rubric(self) -> object:
        """The default rubric (``reward.rubric``)."""
        return self.reward.rubric
