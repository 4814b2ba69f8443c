"""What the commands share: options generated from :mod:`prometheus_reward.config`, building the
judge they describe, reading the input file, the user-error type, and the summary table.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_judging_options(parser)
    >>> config_from(JudgingConfig, parser.parse_args(["--mode", "direct"])).mode
    'direct'
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from ..config import JudgeConfig, JudgingConfig, RerankConfig, from_object, options
from ..rows import RowError, RubricColumn, reference_for

logger = logging.getLogger("prometheus_reward.cli")


class UserError(Exception):
    """A mistake the user can fix (a bad option, a missing file): the command prints
    ``error: <message>`` and exits with status 2, without a traceback (unless ``--debug``)."""


# -- options from the configs --------------------------------------------------------------------------------
def add_options(parser: argparse.ArgumentParser, cls: type, title: str | None = None, *,
                skip: Iterable[str] = (), defaults: dict[str, Any] | None = None) -> None:
    """Add the command-line options of a config class (its fields' flags, help, choices and
    defaults; ``defaults`` overrides a default for this command only)."""
    group = parser.add_argument_group(title) if title else parser
    defaults = dict(defaults or {})
    skip = set(skip)
    for opt in options(cls):
        if not opt.cli or opt.name in skip:
            continue
        default = defaults.get(opt.name, opt.default)
        shown = "" if default is None else f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": opt.name, "default": default, "help": opt.help + shown}
        base = opt.base_type
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif base is list:
            kwargs["action"] = "append"
            kwargs["default"] = None if default is None else list(default)
            kwargs["metavar"] = "URL"
        else:
            kwargs["type"] = base
            if opt.choices:
                kwargs["choices"] = list(opt.choices)
        group.add_argument(opt.flag, **kwargs)


def config_from(cls: type, args: argparse.Namespace) -> Any:
    """The config of ``cls`` the parsed options describe."""
    return from_object(cls, args)


def add_judge_options(parser: argparse.ArgumentParser, **defaults: Any) -> None:
    """Who judges: :class:`~prometheus_reward.config.JudgeConfig` as options."""
    add_options(parser, JudgeConfig, "evaluator (local model, or OpenAI-compatible servers with --openai-base-url)",
                defaults=defaults)


def add_judging_options(parser: argparse.ArgumentParser, **defaults: Any) -> None:
    """How each row is judged: :class:`~prometheus_reward.config.JudgingConfig` as options."""
    add_options(parser, JudgingConfig, "judging", defaults=defaults)


def add_rerank_options(parser: argparse.ArgumentParser, **defaults: Any) -> None:
    """How candidates are ranked: :class:`~prometheus_reward.config.RerankConfig` as options."""
    add_options(parser, RerankConfig, "reranking", defaults=defaults)


def add_cache_options(parser: argparse.ArgumentParser) -> None:
    from ..cached import CACHE_ENV

    group = parser.add_argument_group("judgment cache")
    group.add_argument("--cache", default=None, help=f"sqlite judgment cache (default ${CACHE_ENV} or the cache home)")
    group.add_argument("--no-cache", action="store_true", help="judge every row again")


def judge_from_args(args: argparse.Namespace, cached: bool = False) -> Any:
    """The judge the options describe (wrapped in a sqlite cache when ``cached`` and not
    ``--no-cache``)."""
    judge = config_from(JudgeConfig, args).build()
    if cached and not getattr(args, "no_cache", False):
        from ..cached import CachedJudge

        return CachedJudge(judge, getattr(args, "cache", None))
    return judge


def judging_from_args(args: argparse.Namespace) -> JudgingConfig:
    return config_from(JudgingConfig, args)


# -- input files ----------------------------------------------------------------------------------------------
def add_input_options(parser: argparse.ArgumentParser, *, rubric_help: str | None = None) -> None:
    parser.add_argument("input", help="JSONL, JSON, CSV or Parquet file")
    parser.add_argument("-o", "--output", required=True, help="JSONL written as results come")
    parser.add_argument("--rubric", default=None, help=rubric_help or
                        "preset name, YAML/JSON file or rubric text (a per-row 'rubric' column takes precedence)")
    parser.add_argument("--reference-column", default=None, help="column with reference answers (default: reference_answer)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per evaluator call (and per flush)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows")


def read_input(path: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of an input file; a missing or unreadable file is a :class:`UserError`."""
    from ..io import read_rows

    try:
        rows = read_rows(path, limit)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    if not rows:
        raise UserError(f"{path} has no rows")
    return rows


def pick(row_keys: Iterable[str], wanted: str | None, candidates: Sequence[str], what: str) -> str:
    """:func:`prometheus_reward.io.pick_column`, with a missing column as a :class:`UserError`."""
    from ..io import pick_column

    try:
        return pick_column(row_keys, wanted, candidates, what)
    except ValueError as err:
        raise UserError(str(err)) from None


def read_judge_rows(rows: list[dict[str, Any]], texts: dict[str, tuple[str, Callable[[Any, int, str], str]]],
                    rubric: Any, reference_column: str | None) -> list[dict[str, Any] | str]:
    """Per input row: the judge's inputs (``texts`` maps a name to its column and reader, plus
    ``rubric`` and ``reference``), or the row's problem naming the row and field. A problem with
    ``--rubric`` itself is a :class:`UserError`: it would fail every row."""
    try:
        rubrics = RubricColumn(rubric)
    except (ValueError, TypeError, OSError) as err:
        raise UserError(f"--rubric: {err}") from None
    if rubric is None and not any("rubric" in row for row in rows):
        raise UserError("give --rubric or a 'rubric' column in the data")
    column = reference_column or "reference_answer"
    out: list[dict[str, Any] | str] = []
    for index, row in enumerate(rows):
        try:
            inputs = {name: read(row.get(col), index, col) for name, (col, read) in texts.items()}
            inputs["rubric"] = rubrics.resolve(row.get("rubric"), index)
            inputs["reference"] = reference_for(row.get(column), None, index, column)
            out.append(inputs)
        except RowError as err:
            out.append(str(err))
    return out


def judge_in_batches(rows: list[dict[str, Any]], inputs: list[dict[str, Any] | str], batch_size: int, output: str,
                     judge_batch: Callable[[list[dict[str, Any]]], list[Any]], unscorable: Callable[[str], Any],
                     desc: str, on_result: Callable[[Any], None]) -> None:
    """Judge the usable rows batch by batch and write every input row (a bad row with its error,
    never dropped) to ``output`` as each batch finishes."""
    from tqdm.auto import tqdm

    from ..io import JsonlWriter

    with JsonlWriter(output) as writer, tqdm(total=len(rows), desc=desc, unit="row") as bar:
        for start in range(0, len(rows), batch_size):
            span = range(start, min(start + batch_size, len(rows)))
            live = [k for k in span if not isinstance(inputs[k], str)]
            results = dict(zip(live, judge_batch([inputs[k] for k in live]) if live else []))
            out = []
            for k in span:
                result = results[k] if k in results else unscorable(inputs[k])
                if result.error:
                    logger.warning("row %d unscorable: %s", k, result.error)
                on_result(result)
                out.append({**rows[k], **result.to_dict()})
            writer.write_many(out)
            bar.update(len(span))


# -- output -----------------------------------------------------------------------------------------------------
def score_summary_table(title: str, scores: Sequence[int | None], values: Sequence[float | None],
                        extra: dict[str, Any] | None = None):
    """A rich table: rows, failures, mean score, and a histogram of the integer scores."""
    from rich.table import Table

    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    valid = [v for v in values if v is not None]
    table.add_row("rows", str(len(scores)))
    table.add_row("failures (unscorable)", str(sum(v is None for v in values)))
    table.add_row("mean score", f"{sum(valid) / len(valid):.3f}" if valid else "n/a")
    for key, value in (extra or {}).items():
        table.add_row(key, str(value))
    counts = Counter(s for s in scores if s is not None)
    peak = max(counts.values(), default=0)
    for score in range(1, 6):
        bar = "#" * round(30 * counts[score] / peak) if peak else ""
        table.add_row(f"score {score}", f"{counts[score]:>5} {bar:<30}")
    return table
