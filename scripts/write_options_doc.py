"""Regenerate docs/options.md from prometheus_reward.config (a test checks it is current)."""

from pathlib import Path

from prometheus_reward.config import defaults_table

HEAD = """# Options

Every option is declared once, in `src/prometheus_reward/config.py`; the command line, the
recipes' YAML/`TrlParser` arguments, the reward configs of the PPO adapters, the server and the
`PROMETHEUS_REWARD_*` environment variables are generated from it. This table is generated too
(`python scripts/write_options_doc.py`; a test keeps it in sync).

One deliberate exception: `meta-eval` defaults `--samples` to 3, the papers' protocol.

"""

if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "docs" / "options.md"
    path.write_text(HEAD + defaults_table(), encoding="utf-8")
    print(f"wrote {path}")
