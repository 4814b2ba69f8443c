"""``prometheus-reward serve``: rewards over HTTP (OpenRLHF ``/get_reward``, ``/grade``, ``/compare``,
``/group_reward``). Its options come from the configs: the judge's (JudgeConfig), the judging
(JudgingConfig), the rewards' (RewardConfig: rubric, shape, normalisation, ``--fallback``) and the
server's (:class:`~prometheus_reward.server.config.ServerConfig`)."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
from typing import Any

from ..config import RewardConfig, options
from .common import (
    UserError,
    _with_flag,
    add_judge_options,
    add_judging_options,
    add_options,
    config_from,
    judge_configs,
    judge_from_args,
    rubric_option,
)

logger = logging.getLogger("prometheus_reward.server")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port(text: str) -> int:
    """An argparse type: a TCP port (0 lets the system choose)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


# The reward options a server uses (the rest are trainer-side: columns, names, timeouts, async).
_SERVER_REWARD_OPTIONS = ("rubric", "reference_answer", "reward_type", "normalize", "pairwise_transform",
                          "pairwise_anchor", "pairs_per_completion", "fallback", "breaker_window", "breaker_threshold")


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ..server.config import ServerConfig

    parser = subparsers.add_parser("serve", help="serve rewards over HTTP (OpenRLHF /get_reward, /grade, /compare)")
    add_judge_options(parser)
    add_judging_options(parser)
    add_options(parser, RewardConfig, "rewards",
                skip=[o.name for o in options(RewardConfig) if o.name not in _SERVER_REWARD_OPTIONS])
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    group.add_argument("--port", type=_port, default=8000)
    # the reward of unscorable rows is RewardConfig.fallback (--fallback); the old flag still works
    group.add_argument("--unscorable-reward", dest="fallback", type=float, default=None, help=argparse.SUPPRESS)
    add_options(group, ServerConfig)
    group.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from ..adapters.protocol import OPENRLHF_HTTP
    from ..rewards import UnusableReward, make_reward
    from ..server import ServerConfig, create_app

    # everything the user typed is checked before the model loads
    judge_config, judging = judge_configs(args)
    reward = config_from(RewardConfig, args)
    reward = dataclasses.replace(reward, rubric=rubric_option(reward.rubric))
    args.token = args.token or os.environ.get("PROMETHEUS_REWARD_TOKEN") or None
    try:
        config = dataclasses.replace(config_from(ServerConfig, args), judging=judging, reward=reward)
    except ValueError as err:
        raise UserError(_with_flag(str(err), ServerConfig)) from None
    try:  # a shape /get_reward cannot serve is refused now (the reward builds its judge lazily: nothing loads)
        make_reward(judge_config, judging, reward).for_engine(*OPENRLHF_HTTP)
    except UnusableReward as err:
        raise UserError(str(err)) from None
    if not _is_loopback(args.host) and not config.token:
        logger.warning("serving on %s without a bearer token: anyone who can reach it can use the judge", args.host)
    judge = judge_from_args(args, config=judge_config)
    app = create_app(judge, config)
    print(f"prometheus-reward serving {judge.model_id} (mode={config.judging.mode}) on http://{args.host}:{args.port}",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
