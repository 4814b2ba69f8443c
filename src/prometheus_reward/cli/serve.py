"""``prometheus-reward serve``: rewards over HTTP (OpenRLHF ``/get_reward``, ``/grade``, ``/compare``)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from typing import Any

from ..config import RewardConfig, options
from .common import (
    UserError,
    add_judge_options,
    add_judging_options,
    add_options,
    config_from,
    judge_configs,
    judge_from_args,
    positive_int,
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


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="serve rewards over HTTP (OpenRLHF /get_reward, /grade, /compare)")
    add_judge_options(parser)
    add_judging_options(parser)
    # the server's rewards: its default rubric and the normalisation (the rest are trainer-side options)
    add_options(parser, RewardConfig, "rewards", skip=[o.name for o in options(RewardConfig) if o.name not in ("rubric", "normalize")])
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    group.add_argument("--port", type=_port, default=8000)
    group.add_argument("--unscorable-reward", type=float, default=None,
                       help="reward sent to OpenRLHF for unscorable rows, flagged in extra_logs (default: the "
                            "normaliser's neutral value, a score of 3)")
    group.add_argument("--no-labels-as-reference", action="store_true",
                       help="ignore OpenRLHF labels instead of using them as reference answers")
    group.add_argument("--token", default=None,
                       help="require 'Authorization: Bearer TOKEN' (or set PROMETHEUS_REWARD_TOKEN)")
    group.add_argument("--max-batch-rows", type=positive_int, default=64, help="rows merged into one judge call")
    group.add_argument("--max-merge-tokens", type=positive_int, default=65536,
                       help="estimated tokens merged into one judge call (--max-batch-tokens is the backend's budget)")
    group.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits to fill")
    group.add_argument("--workers", type=positive_int, default=None,
                       help="judge calls in parallel (default 1 for a local model, 4 for HTTP upstreams)")
    group.add_argument("--max-request-rows", type=positive_int, default=4096)
    group.add_argument("--max-body-mb", type=float, default=16.0)
    group.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from ..server import ServerConfig, create_app

    # everything the user typed is checked before the model loads
    judge_config, judging = judge_configs(args)
    reward = config_from(RewardConfig, args)
    rubric = rubric_option(reward.rubric)
    if args.max_wait_ms < 0:
        raise UserError(f"--max-wait-ms must be 0 or more, got {args.max_wait_ms}")
    if not args.max_body_mb > 0:
        raise UserError(f"--max-body-mb must be positive, got {args.max_body_mb}")
    token = args.token or os.environ.get("PROMETHEUS_REWARD_TOKEN") or None
    if not _is_loopback(args.host) and not token:
        logger.warning("serving on %s without a bearer token: anyone who can reach it can use the judge", args.host)
    judge = judge_from_args(args, config=judge_config)
    remote = bool(args.base_urls)
    config = ServerConfig(
        judging=judging,
        rubric=rubric,
        normalize=reward.normalize,
        unscorable_reward=args.unscorable_reward,
        labels_as_reference=not args.no_labels_as_reference,
        token=token,
        max_batch_rows=args.max_batch_rows,
        max_batch_tokens=args.max_merge_tokens,
        max_wait_ms=args.max_wait_ms,
        workers=args.workers or (4 if remote else 1),
        max_request_rows=args.max_request_rows,
        max_body_bytes=int(args.max_body_mb * 2**20),
    )
    app = create_app(judge, config)
    print(f"prometheus-reward serving {judge.model_id} (mode={config.judging.mode}) on http://{args.host}:{args.port}",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


