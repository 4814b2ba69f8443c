"""``prometheus-reward``: grade | compare | label | best-of-n | meta-eval | bench | serve | audit | merge-adapters.

The only place that parses command lines. Each command is a module here with
``make_parser(subparsers)`` (its options, most of them generated from
:mod:`prometheus_reward.config`) and ``main(args)``; the library modules know nothing of argparse.
A mistake the user can fix ends with one ``error: ...`` line on stderr and exit status 2
(``--debug`` shows the traceback instead): a bad option (argparse's own errors included), a
missing or malformed input file, a rubric that is not one, a model that cannot be found. Options
and inputs are checked before the model loads.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from ..config import ConfigError
from ..rows import RowError
from .common import ArgumentParser, UserError

# command -> module (imported when the parser is built; each is small, heavy imports are lazy)
COMMANDS = {
    "grade": "grade",
    "compare": "compare",
    "label": "label",
    "best-of-n": "best_of_n",
    "meta-eval": "meta_eval",
    "bench": "bench",
    "serve": "serve",
    "audit": "audit",
    "merge-adapters": "merge_adapters",
}


def build_parser() -> argparse.ArgumentParser:
    # the docstring's first line, without its reST literal quotes
    parser = ArgumentParser(prog="prometheus-reward", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(f"{__name__}.{module_name}").make_parser(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..io import DataFileError
    from ..metaeval.data import DataError
    from ..rubric import RubricError

    return (UserError, ConfigError, RowError, DataError, DataFileError, RubricError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (2 for a user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed on one line
        return done.code if isinstance(done.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except _user_errors() as err:
        if args.debug:
            raise
        message = " ".join(str(err).split("\n")) or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
