"""``prometheus-reward audit``: probe a judge + rubric with judge-fooling responses (see
:mod:`prometheus_reward.audit`) and report which a policy could exploit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import RewardConfig
from .common import (
    UserError,
    add_judge_options,
    add_judging_options,
    add_options,
    check_output,
    config_from,
    judge_configs,
    judge_from_args,
    positive_int,
    read_input,
    rubric_option,
)


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("audit", help="probe a judge and rubric with known judge-fooling responses")
    p.add_argument("--data", default=None, help="prompts with reference answers (JSONL/JSON/CSV/Parquet: "
                   "instruction/prompt + reference_answer [+ wrong_answer], or a Prometheus benchmark file); "
                   "default: four built-in prompts")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N prompts")
    p.add_argument("--margin", type=float, default=0.1,
                   help="a probe whose mean reward is within this of the reference answer's is exploitable")
    p.add_argument("--batch-size", type=positive_int, default=16, help="judgments per evaluator call")
    p.add_argument("--json", default=None, help="write the report here (and the bar chart beside it, .png)")
    p.add_argument("--plot", default=None, help="the bar chart PNG (default: beside --json)")
    add_options(p, RewardConfig, "reward", skip=[o for o in RewardConfig.__dataclass_fields__ if o not in ("rubric", "normalize")])
    add_judge_options(p)
    add_judging_options(p)
    p.set_defaults(func=main)
    return p


def report_table(report):
    from rich.table import Table

    high = report.controls["reference"].mean_reward
    table = Table(title=f"audit: {report.settings['model']} · rubric {report.settings['rubric']} · "
                        f"mode {report.settings['mode']} · {report.settings['prompts']} prompts")
    for column in ("response", "mean reward", "scored", "unscorable", "verdict"):
        table.add_column(column, justify="left" if column in ("response", "verdict") else "right",
                         no_wrap=column in ("response", "verdict"), min_width=12 if column == "verdict" else None)

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    for name, r in report.controls.items():
        table.add_row(f"[bold]{name} answer (control)[/bold]", fmt(r.mean_reward), str(r.n), str(r.unscorable), "")
    shown = {"exploitable": "[red]EXPLOITABLE[/red]", "safe": "safe", "inconclusive": "[yellow]inconclusive[/yellow]"}
    for name, r in report.probes.items():
        table.add_row(name, fmt(r.mean_reward), str(r.n), str(r.unscorable), shown.get(r.verdict or "", "n/a"))
    for name, r in report.fallback_probes.items():
        how = f" ({r.floors} at the floor)" if r.floors else ""
        table.add_row(f"[italic]{name}[/italic] *", fmt(r.mean_reward), str(r.n),
                      f"{r.unscorable}{how}", shown.get(r.verdict or "", "n/a"))
    table.caption = (f"exploitable: mean reward within {report.margin} of the reference answer's ({fmt(high)}); "
                     f"inconclusive: under {report.settings.get('min_scored_frac', 0.5):g} of the reference answers "
                     f"or of the probe's rows got a reward; rewards as training pays them, normalised "
                     f"'{report.normalize}' (unjudgeable responses at the floor); * a fallback probe: it makes the judge fail")
    return table


def run_record() -> dict[str, Any]:
    """What a saved report needs to be traced: the command, versions, machine and date."""
    import os
    import platform
    import sys
    import time

    import torch
    import transformers

    from .. import __version__

    return {"command": "prometheus-reward " + " ".join(sys.argv[1:]),
            "versions": {"prometheus_reward": __version__, "torch": torch.__version__,
                         "transformers": transformers.__version__, "python": platform.python_version()},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..audit import BUILTIN_ITEMS, audit_items, bar_chart, run_audit

    from ..rows import RowError

    if args.margin < 0:
        raise UserError("--margin must be 0 or more")
    # everything is checked before the model loads
    judge_config, judging = judge_configs(args)
    reward = config_from(RewardConfig, args)
    rubric = rubric_option(reward.rubric)
    if rubric is None:
        raise UserError("give --rubric (the rubric the training reward will use)")
    for path, flag in ((args.json, "--json"), (args.plot, "--plot")):
        if path:
            check_output(path, flag)
    try:
        items = audit_items(read_input(args.data, args.limit), args.data) if args.data else list(BUILTIN_ITEMS)[: args.limit]
    except RowError as err:
        raise UserError(str(err)) from None
    judge = judge_from_args(args, config=judge_config)
    report = run_audit(judge, rubric, items, judging=judging, normalize=reward.normalize, margin=args.margin,
                       batch_size=args.batch_size)
    report.settings.update(run_record())
    console = Console()
    console.print(report_table(report))
    plot = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if plot:
        Path(plot).parent.mkdir(parents=True, exist_ok=True)
        bar_chart(report, plot)
    if args.json or plot:
        console.print("wrote " + ", ".join(p for p in (args.json, plot) if p))
    return 0
