"""``python -m prometheus_reward.server --model M ...``: the ``serve`` command on its own."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
