"""``prometheus-reward merge-adapters A B [...] -o OUT``: merge LoRA adapters of one base model
(the Prometheus 2 recipe: an absolute-grading and a relative-grading evaluator, trained apart, then
merged) into one adapter, or with ``--into-base`` into a full model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import UserError


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ..training.merge import MERGE_METHODS, SIGN_METHODS

    parser = subparsers.add_parser(
        "merge-adapters", help="merge LoRA adapters (e.g. absolute + relative evaluators) into one",
        description="Merge LoRA adapters of one base model through peft's add_weighted_adapter. The output loads "
                    "as a judge with --adapter OUT (or --model OUT after --into-base).")
    parser.add_argument("adapters", nargs="+", help="adapter folders (adapter_config.json + weights)")
    parser.add_argument("-o", "--output", required=True, help="folder for the merged adapter (or model)")
    parser.add_argument("--weights", type=float, nargs="+", default=None,
                        help="one weight per adapter (default: 1/n each, an average)")
    parser.add_argument("--method", choices=MERGE_METHODS, default="cat",
                        help="cat: the exact weighted sum of the updates (rank = sum of ranks; the adapter form of "
                             "Prometheus 2's linear weight merge); svd: the same sum re-factorised to --svd-rank; "
                             "linear: A and B combined separately (equal ranks; approximate); ties / dare_* / "
                             "magnitude_prune: pruned to --density first (default: cat)")
    parser.add_argument("--density", type=float, default=None,
                        help="kept fraction of each update for ties, dare_* and magnitude_prune methods")
    parser.add_argument("--majority-sign-method", choices=SIGN_METHODS, default="total",
                        help="TIES sign election (default: total)")
    parser.add_argument("--svd-rank", type=int, default=None, help="rank of svd merges (default: the largest rank)")
    parser.add_argument("--base", default=None,
                        help="base model (default: the adapters' base_model_name_or_path; 'embedded' works)")
    parser.add_argument("--into-base", action="store_true",
                        help="merge into the base weights and save a full model with its tokenizer")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="dtype the base is loaded (and a full model saved) in (default: auto)")
    parser.add_argument("--device-map", default=None, help="where to load the base, e.g. auto or cuda:0")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from ..training.merge import MergeError, adapter_base, check_merge_options, merge_adapters

    output = Path(args.output)
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise UserError(f"{output} is not empty; pass --overwrite to write into it")
    for adapter in args.adapters:
        if not Path(adapter).is_dir():
            raise UserError(f"no such adapter folder: {adapter}")
    try:
        # checked before the base model loads: a bad option fails in a second
        check_merge_options(len(args.adapters), args.weights, args.method, args.density, args.majority_sign_method)
        for adapter in args.adapters:
            adapter_base(adapter)
        summary = merge_adapters(
            args.adapters, output, weights=args.weights, method=args.method, base=args.base,
            into_base=args.into_base, density=args.density, majority_sign_method=args.majority_sign_method,
            svd_rank=args.svd_rank, dtype=args.dtype, device_map=args.device_map)
    except MergeError as err:
        raise UserError(str(err)) from None
    weights = ", ".join(f"{w:g}" for w in summary["weights"])
    if args.into_base:
        print(f"wrote the merged model to {output} ({summary['method']}, weights {weights}); judge with --model {output}")
    else:
        print(f"wrote the merged adapter to {output} ({summary['method']}, weights {weights}, rank {summary['rank']}); "
              f"judge with --model {summary['base']} --adapter {output}")
    return 0
