"""What the commands share: options generated from :mod:`prometheus_reward.config`, checking every
option before anything heavy loads, building the judge they describe, reading the input file,
the user-error type, and the summary table.

Every command follows the same order, so that a mistake costs seconds and prints one line:
options (configs, numbers, output paths, ``--rubric``) -> the input file
(:func:`prometheus_reward.io.read_data`) -> its columns and rows (:func:`prometheus_reward.rows.judge_inputs`)
-> the model path -> loading the model -> work.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_judging_options(parser)
    >>> config_from(JudgingConfig, parser.parse_args(["--mode", "direct"])).mode
    'direct'
    >>> config_from(JudgingConfig, parser.parse_args(["--samples", "0"]))
    Traceback (most recent call last):
    ...
    prometheus_reward.cli.common.UserError: --samples must be positive, got 0
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..config import ConfigError, JudgeConfig, JudgingConfig, RerankConfig, from_object, options
from ..rows import RubricColumn

logger = logging.getLogger("prometheus_reward.cli")


class UserError(Exception):
    """A mistake the user can fix (a bad option, a missing file): the command prints
    ``error: <message>`` and exits with status 2, without a traceback (unless ``--debug``)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line too: ``error: argument --mode: invalid choice:
    ... (see prometheus-reward grade --help)``, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _whole_number(text: str, least: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{rule}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1.

    Example:
        >>> positive_int("3")
        3
    """
    return _whole_number(text, 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    return _whole_number(text, 0, "must be 0 or more")


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
    """The config of ``cls`` the parsed options describe; a bad value is a :class:`UserError`
    naming the option's flag (``--samples must be positive, got 0``)."""
    try:
        return from_object(cls, args)
    except ConfigError as err:
        raise UserError(_with_flag(str(err), cls)) from None


def _with_flag(message: str, cls: type) -> str:
    """Put the option's flag in place of its field name at the head of a config error."""
    for opt in sorted(options(cls), key=lambda o: -len(o.name)):
        pattern = rf"^(unknown )?{re.escape(opt.name)}\b"
        if re.match(pattern, message):
            return re.sub(pattern, lambda m: (m.group(1) or "") + opt.flag, message, count=1)
    return message


def add_judge_options(parser: argparse.ArgumentParser, **defaults: Any) -> None:
    """Who judges: :class:`~prometheus_reward.config.JudgeConfig` as options."""
    add_options(parser, JudgeConfig, "evaluator (--engine: a local model, or OpenAI-compatible servers with "
                "--openai-base-url)",
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
    group.add_argument("--cache", default=None,
                       help=f"sqlite judgment cache (default ${CACHE_ENV}, else one file per evaluator under the cache home)")
    group.add_argument("--no-cache", action="store_true", help="judge every row again")
    group.add_argument("--cache-share", action="store_true",
                       help="use a cache file that another evaluator wrote (refused otherwise; keys keep them apart)")


def judge_from_args(args: argparse.Namespace, cached: bool = False, config: JudgeConfig | None = None) -> Any:
    """The judge the options describe (wrapped in a sqlite cache when ``cached`` and not
    ``--no-cache``), built by its engine (:meth:`Judge.from_config
    <prometheus_reward.judge.Judge.from_config>`). The engine and the model path are checked
    first, and a model that cannot be found or is no model becomes a :class:`UserError` naming
    ``--model``; any other failure is left to raise."""
    from ..judge import Judge

    config = config or config_from(JudgeConfig, args)
    check_judge_paths(config)
    check_engine(config)
    what = f"{config.model}" + (f" with --adapter {config.adapter}" if config.adapter else "")
    judge = load_or_explain("--model", what, lambda: Judge.from_config(config))
    if cached and not getattr(args, "no_cache", False):
        from ..cached import CachedJudge, CacheIdentityError

        try:
            return CachedJudge(judge, getattr(args, "cache", None), share=getattr(args, "cache_share", False))
        except CacheIdentityError as err:
            raise UserError(f"--cache: {err}") from None
    return judge


def check_engine(config: JudgeConfig) -> Any:
    """The engine's backend class, from the registry (:data:`prometheus_reward.registry.ENGINES`);
    an engine whose module cannot be imported (an optional dependency missing) is a
    :class:`UserError` naming ``--engine``."""
    from ..registry import ENGINES

    try:
        return ENGINES.get(config.engine_name)
    except ImportError as err:
        raise UserError(f"--engine {config.engine_name}: its backend cannot be imported ({err}); install what it "
                        f"needs (e.g. pip install 'prometheus-reward[{config.engine_name}]')") from None


def check_judge_paths(config: JudgeConfig) -> None:
    """``--model`` and ``--adapter`` name loadable places (engines that load the model here;
    a served model, ``--openai-base-url``, has no local path)."""
    if not config.is_remote:
        check_model_path("--model", config.model)
        if config.adapter:
            check_model_path("--adapter", config.adapter, adapter=True)


def judge_configs(args: argparse.Namespace) -> tuple[JudgeConfig, JudgingConfig]:
    """Both configs, checked (a bad value names its flag), before anything loads."""
    judge = config_from(JudgeConfig, args)
    judging = config_from(JudgingConfig, args)
    if getattr(args, "cache", None) and not getattr(args, "no_cache", False):
        check_output(args.cache, "--cache")
    return judge, judging


# -- models ------------------------------------------------------------------------------------------------------
_NOT_A_MODEL = re.compile(r"Unrecognized model|Unrecognized configuration class|does not recognize this architecture|"
                          r"Couldn't instantiate the backend tokenizer|does not appear to have a file named")


def _path_like(value: str) -> bool:
    """A model argument meant as a local path (hub ids are ``name`` or ``org/name``)."""
    if value.startswith(("/", "./", "../", "~", ".\\")) or "\\" in value or value.endswith("/"):
        return True
    if value.count("/") >= 2:
        return True
    parent = Path(value).parent
    return value.count("/") == 1 and parent.is_dir()


def check_model_path(flag: str, value: str, adapter: bool = False) -> None:
    """A model (or adapter) argument that names a local folder must be one: no such folder, a
    file, or a folder without ``config.json`` (``adapter_config.json``) is a :class:`UserError`.
    Hub ids and the embedded aliases pass (the hub is asked when loading).

    Example:
        >>> check_model_path("--model", "/no/such/model")
        Traceback (most recent call last):
        ...
        prometheus_reward.cli.common.UserError: --model /no/such/model: no such folder; give a local model folder, a hub id (e.g. prometheus-eval/prometheus-7b-v2.0) or 'embedded'
    """
    from ..embedded import EMBEDDED_ALIASES, TINY_RANDOM_ALIAS

    if value in EMBEDDED_ALIASES or value == TINY_RANDOM_ALIAS:
        return
    path = Path(value).expanduser()
    marker = "adapter_config.json" if adapter else "config.json"
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{flag} {value} is a file; give the folder that holds {marker}, or a hub id")
        if not (path / marker).is_file() and not (path / "adapter_config.json").is_file():
            what = "a peft adapter" if adapter else "a transformers model"
            raise UserError(f"{flag} {value}: the folder has no {marker}, so it is not {what} folder")
        return
    if _path_like(value):
        example = "a peft adapter folder or hub id" if adapter else \
            "a local model folder, a hub id (e.g. prometheus-eval/prometheus-7b-v2.0) or 'embedded'"
        raise UserError(f"{flag} {value}: no such folder; give {example}")


def load_or_explain(flag: str, value: str, load: Callable[[], Any]) -> Any:
    """``load()``, with the "not found / not a model" family of failures (transformers raises
    OSError for anything it cannot find locally or on the hub, ValueError for a folder that holds
    no model it knows) turned into one :class:`UserError` naming ``flag``; anything else raises."""
    try:
        return load()
    except OSError as err:
        from ..io import one_line

        where = "could not be loaded" if Path(value).expanduser().exists() else \
            "not a local folder, and could not be loaded from the hub"
        raise UserError(f"{flag} {value}: {where}: {one_line(err)} (check the name, the network or HF_HUB_OFFLINE, "
                        "and HF_TOKEN for gated models)") from err
    except ValueError as err:
        if not _NOT_A_MODEL.search(str(err)):
            raise
        from ..io import one_line

        raise UserError(f"{flag} {value}: not a model transformers can load: {one_line(err)}") from err


# -- paths ---------------------------------------------------------------------------------------------------------
def _existing_ancestor(path: Path) -> Path:
    """``path`` itself or its nearest parent that exists."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor)


def check_output(path: str | os.PathLike, flag: str = "-o/--output", *, inputs: Iterable[Any] = ()) -> None:
    """``path`` can be written: not a folder, not one of ``inputs``, and its folder exists or can
    be made in a writable place. Nothing is created.

    Example:
        >>> check_output("/etc/hostname/out.jsonl")
        Traceback (most recent call last):
        ...
        prometheus_reward.cli.common.UserError: -o/--output /etc/hostname/out.jsonl: /etc/hostname is a file, not a folder
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name inside it (e.g. {Path(path) / 'out.jsonl'})")
    for source in inputs:
        if source is not None and target.exists() and Path(source).exists() and target.resolve() == Path(source).resolve():
            raise UserError(f"{flag} {path} is the input file; write the results to another file")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise UserError(f"{flag} {path}: the file is not writable; choose another file")
        return
    _check_writable_folder(target.parent, flag, str(path))


def check_output_dir(path: str | os.PathLike, flag: str = "--output-dir") -> None:
    """``path`` is a folder that exists or can be made, and can be written in."""
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise UserError(f"{flag} {path} is a file; give a folder")
    _check_writable_folder(target, flag, str(path))


def _check_writable_folder(folder: Path, flag: str, shown: str) -> None:
    if folder.is_dir():
        base = folder
    else:
        base = _existing_ancestor(folder)
        if not base.is_dir():
            raise UserError(f"{flag} {shown}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {shown}: cannot write in {base} (permission denied); choose another place")


# -- rubrics --------------------------------------------------------------------------------------------------------
def rubric_option(value: Any, flag: str = "--rubric") -> Any:
    """The rubric (or checklist) an option names (:meth:`Rubric.coerce`'s rules; a YAML/JSON file
    may hold a checklist), or None; a bad one is a :class:`UserError` naming the option (a typo
    would fail every row).

    Example:
        >>> rubric_option("honesty").name
        'honesty'
    """
    from ..checklist import coerce_criteria

    if value is None:
        return None
    try:
        return coerce_criteria(value)
    except (ValueError, TypeError) as err:
        raise UserError(f"{flag}: {err}") from None


# -- input files ----------------------------------------------------------------------------------------------
def add_input_options(parser: argparse.ArgumentParser, *, rubric_help: str | None = None) -> None:
    parser.add_argument("input", help="JSONL, JSON, CSV or Parquet file")
    parser.add_argument("-o", "--output", required=True, help="JSONL written as results come")
    parser.add_argument("--rubric", default=None, help=rubric_help or
                        "preset name, YAML/JSON file or rubric text (a per-row 'rubric' column takes precedence)")
    parser.add_argument("--reference-column", default=None, help="column with reference answers (default: reference_answer)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="rows per evaluator call (and per flush)")
    parser.add_argument("--limit", type=positive_int, default=None, help="only the first N rows")
    add_skip_option(parser)


def add_skip_option(parser: argparse.ArgumentParser, side: str = "OUT.skipped.jsonl") -> None:
    parser.add_argument("--skip-bad-rows", action="store_true",
                        help=f"set malformed input lines aside in {side} (with the reason) and go on; "
                             "by default the command stops before any work, naming the line")


def input_error(err: Exception, side_file: Any = None) -> UserError:
    """A :class:`~prometheus_reward.io.DataFileError` as a :class:`UserError`, with what to do
    about malformed lines."""
    message = str(err)
    if getattr(err, "bad_lines", None):
        where = f" in {side_file}" if side_file else ""
        message += f"; fix the line, or pass --skip-bad-rows to set bad lines aside{where}"
    return UserError(message)


def read_input(path: str, limit: int | None = None, skip_bad_rows: bool = False, output: Any = None):
    """The rows of an input file (:class:`~prometheus_reward.io.DataRows`); a missing,
    unreadable or empty file, or a malformed line (unless ``skip_bad_rows``), is a
    :class:`UserError` naming the file and line."""
    from ..io import DataFileError, read_data, skipped_path

    try:
        data = read_data(path, limit, skip_bad_rows=skip_bad_rows)
    except DataFileError as err:
        raise input_error(err, skipped_path(output) if output else None) from None
    if not data.rows:
        if data.bad_lines:
            raise UserError(f"{path}: no readable rows: all {len(data.bad_lines)} lines are malformed "
                            f"(first: {data.bad_lines[0].reason})")
        raise UserError(f"{path}: no rows")
    return data


def pick(row_keys: Iterable[str], wanted: str | None, candidates: Sequence[str], what: str,
         flag: str | None = None) -> str:
    """:func:`prometheus_reward.io.pick_column`, with a missing column as a :class:`UserError`
    (naming ``flag`` when the column was asked for by that option)."""
    from ..io import pick_column

    try:
        return pick_column(row_keys, wanted, candidates, what)
    except ValueError as err:
        raise UserError(f"{flag}: {err}" if wanted and flag else str(err)) from None


def read_judge_rows(rows: Sequence[dict[str, Any]], instruction_column: str, response_columns: Mapping[str, str],
                    rubric: Any, reference_column: str | None) -> list[dict[str, Any] | str]:
    """Per input row: the judge's inputs (``instruction``, one entry per name in
    ``response_columns`` (name -> column), ``rubric`` and ``reference``), or the row's problem
    naming the row and field (rows are named by their number in the file,
    :attr:`DataRows.numbers`), assembled by :func:`prometheus_reward.rows.judge_inputs` as every
    entry point does. A problem with ``--rubric`` itself is a :class:`UserError`: it would fail
    every row."""
    from ..io import DataRows
    from ..rows import judge_inputs

    data = DataRows.of(rows)
    try:
        rubrics = RubricColumn(rubric)
    except (ValueError, TypeError, OSError) as err:
        raise UserError(f"--rubric: {err}") from None
    if rubric is None and not any(row.get("rubric") is not None for row in data):
        raise UserError("give --rubric or a 'rubric' column in the data")
    column = reference_column or "reference_answer"
    prompts = [row.get(instruction_column) for row in data.rows]
    per_response = {name: judge_inputs(prompts, [row.get(col) for row in data.rows], [row.get("rubric") for row in data.rows],
                                       [row.get(column) for row in data.rows], default_rubric=rubrics,
                                       reference_field=column, prompt_field=instruction_column, response_field=col,
                                       numbers=data.numbers)
                    for name, col in response_columns.items()}
    first = next(iter(per_response.values()))
    out: list[dict[str, Any] | str] = []
    for k in range(len(data.rows)):
        error = next((part.errors[k] for part in per_response.values() if part.errors[k]), None)
        if error:
            out.append(error)
            continue
        out.append({"instruction": first.instructions[k], **{name: part.responses[k] for name, part in per_response.items()},
                    "rubric": first.rubrics[k], "reference": first.references[k]})
    return out


def judge_in_batches(rows: Sequence[dict[str, Any]], inputs: list[dict[str, Any] | str], batch_size: int, output: str,
                     judge_batch: Callable[[list[dict[str, Any]]], list[Any]], unscorable: Callable[[str], Any],
                     desc: str, on_result: Callable[[Any], None]) -> None:
    """Judge the usable rows batch by batch and write every input row (a bad row with its error,
    never dropped) to ``output`` as each batch finishes."""
    from tqdm.auto import tqdm

    from ..io import DataRows, JsonlWriter

    data = DataRows.of(rows)
    with JsonlWriter(output) as writer, tqdm(total=len(data), desc=desc, unit="row") as bar:
        for start in range(0, len(data), batch_size):
            span = range(start, min(start + batch_size, len(data)))
            live = [k for k in span if not isinstance(inputs[k], str)]
            results = dict(zip(live, judge_batch([inputs[k] for k in live]) if live else []))
            out = []
            for k in span:
                result = results[k] if k in results else unscorable(inputs[k])
                if result.error:
                    logger.warning("row %d unscorable: %s", data.numbers[k], result.error)
                on_result(result)
                out.append({**data.rows[k], **result.to_dict()})
            writer.write_many(out)
            bar.update(len(span))


def set_aside(data: Any, output: Any) -> dict[str, Any]:
    """Write the malformed lines of ``data`` to ``OUT.skipped.jsonl`` (an old one is replaced or
    removed) and return the summary rows that count them."""
    from ..io import skipped_path, write_skipped

    path = write_skipped(skipped_path(output), getattr(data, "bad_lines", []))
    if path is None:
        return {}
    return {"malformed lines set aside": f"{len(data.bad_lines)} -> {path}"}


@dataclass
class JudgedFile:
    """An input file ready to judge: its rows, the judge's inputs per row (or the row's problem),
    the judge, how to judge, and the summary rows of what was set aside."""

    rows: Any
    inputs: list[Any]
    judge: Any
    judging: JudgingConfig
    aside: dict[str, Any]


def open_judged_file(args: argparse.Namespace, responses: Mapping[str, tuple[str | None, Sequence[str], str, str]]) -> JudgedFile:
    """The first half of ``grade`` and ``compare``: every option, the output path, the rubric, the
    input file and its columns checked before the model loads, then the judge. ``responses`` maps
    each response field to (the option's column, the default column names, what it is, the flag)."""
    judge_config, judging = judge_configs(args)
    check_output(args.output, inputs=[args.input])
    rubric = rubric_option(args.rubric)
    rows = read_input(args.input, args.limit, args.skip_bad_rows, args.output)
    instruction = pick(rows[0], args.instruction_column, ("instruction", "prompt", "question"), "instruction",
                       "--instruction-column")
    columns = {name: pick(rows[0], wanted, candidates, what, flag) for name, (wanted, candidates, what, flag) in responses.items()}
    inputs = read_judge_rows(rows, instruction, columns, rubric, args.reference_column)
    judge = judge_from_args(args, config=judge_config)
    return JudgedFile(rows, inputs, judge, judging, set_aside(rows, args.output))


# -- output -----------------------------------------------------------------------------------------------------
def score_summary_table(title: str, scores: Sequence[int | None], values: Sequence[float | None],
                        extra: dict[str, Any] | None = None):
    """A rich table: rows, failures, mean score, and a histogram of ``scores`` (integers 1-5)."""
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
