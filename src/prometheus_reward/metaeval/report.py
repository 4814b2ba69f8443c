"""Writing a meta-evaluation run: ``results.json``, ``results.md`` (headline metrics beside the
published numbers) and PNG plots (judge vs gold scatter, confusion matrix, calibration).

Example:
    >>> from prometheus_reward.metaeval.report import GENERIC_HEADLINES
    >>> GENERIC_HEADLINES["absolute"][0].label
    'Pearson vs gold (mean of k)'
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ..registry import BENCHMARKS
from . import metrics as M
from .runner import integer_value, relative_picks
from .spec import Headline

# Sets without published figures (custom data): the headline metrics of each kind.
GENERIC_HEADLINES: dict[str, tuple[Headline, ...]] = {
    "absolute": (Headline("Pearson vs gold (mean of k)", ("{src}", "pearson", "value")),),
    "pairwise": (
        Headline("accuracy, absolute grading", ("absolute", "{src}", "accuracy", "value")),
        Headline("accuracy, relative grading", ("relative", "{rel}", "accuracy", "value")),
        Headline("accuracy with ties, relative", ("relative", "{rel}", "accuracy_with_ties", "value")),
    ),
}

# The published figures sit in each benchmark's spec (``BenchmarkSpec.published``); these are the
# results.md columns, in this order (a spec's other model names follow them).
PUBLISHED_MODELS = ("Prometheus-2-7B", "Prometheus-2-8x7B", "Prometheus-1-13B", "GPT-4-1106")


def _get(tree: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _with_ci(entry: Any) -> str:
    if not isinstance(entry, dict):
        return _fmt(entry)
    text = _fmt(entry.get("value"))
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" [{_fmt(entry['ci_low'])}, {_fmt(entry['ci_high'])}]"
    return text


def headline_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Headline metrics of a run, each with this run's two judge numbers and the published ones."""
    metrics = result["metrics"]
    name = result["benchmark"]
    heads = BENCHMARKS.get(name).published if name in BENCHMARKS else ()
    if not heads:  # custom data: no published figures
        heads = GENERIC_HEADLINES[result["kind"]]
    rows = []
    for head in heads:
        values = {}
        for column, src, rel in (("integer", "integer", "votes"), ("expected", "expected", "probs")):
            path = [p.format(src=src, rel=rel) for p in head.path]
            values[column] = _get(metrics, path[:-1])
        if all(v is None for v in values.values()):
            continue
        rows.append({"label": head.label, **values, "published": dict(head.figures)})
    return rows


def write_markdown(result: dict[str, Any], path: Path) -> None:
    """``results.md``: headline table beside the published numbers, then the details."""
    m = result["metrics"]
    rows = headline_rows(result)
    others = [name for row in rows for name in row["published"] if name not in PUBLISHED_MODELS]
    models = PUBLISHED_MODELS + tuple(dict.fromkeys(others))
    lines = [
        f"# Meta-evaluation: {result['benchmark']}",
        "",
        f"- data: `{result['data']}` ({result['n']} {'rows' if result['kind'] == 'absolute' else 'pairs'}"
        + (f", first {result['limit']} only" if result.get("limit") else "") + ")",
        f"- judge: `{result['model']}`, mode `{result['mode']}`, {result['samples']} sample(s) per judgment"
        + (f", protocols: {', '.join(result['protocols'])}" if result["kind"] == "pairwise" else ""),
        f"- generation: {json.dumps(result.get('generation', {}))}",
        f"- run time: {_fmt(result.get('runtime_s'), 1)} s",
        "",
        "Integer = the papers' protocol (mean of the k parsed `[RESULT]` scores; relative: the parsed A/B"
        " votes). Expected = from the score/answer-token probabilities. Brackets: bootstrap 95% interval.",
        "Published numbers are on the full sets; a run with `--limit` or another judge is not comparable one to one.",
        "",
        "| metric | this run: integer | this run: expected | " + " | ".join(models) + " |",
        "|---|---|---|" + "---|" * len(models),
    ]
    for row in rows:
        published = " | ".join(_fmt(row["published"].get(name)) for name in models)
        lines.append(f"| {row['label']} | {_with_ci(row['integer'])} | {_with_ci(row['expected'])} | {published} |")
    lines += ["", "## Details", ""]
    if result["kind"] == "absolute":
        lines += _absolute_details(m)
    else:
        lines += _pairwise_details(m)
    lines += ["", "Plots: `scatter.png`, `confusion.png`, `calibration.png`. Per-row predictions: `predictions.jsonl`.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def _absolute_details(m: dict[str, Any]) -> list[str]:
    lines = [
        f"rows {m['n']}, unscorable {m['unscorable']}, truncated {m['truncated']}, mean gold score {_fmt(m['gold_mean_score'])}",
        f"integer metrics over the {m.get('parsed', 'n/a')} rows with a parsed [RESULT]; "
        f"{m.get('forced', 0)} rows' expected scores used a forced [RESULT] reading (the evaluator wrote none)",
        "",
        "| judge number | n | Pearson | Spearman | Kendall | exact agreement | any-of-gold agreement | within 1 | mean score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for source in ("integer", "expected"):
        if source not in m:
            continue
        s = m[source]
        a = s["agreement"]
        lines.append(
            f"| {source} | {s['n']} | {_with_ci(s['pearson'])} | {_with_ci(s['spearman'])} | {_with_ci(s['kendall'])} | "
            f"{_fmt(a['exact'])} | {_fmt(a['any_gold'])} | {_fmt(a['within_1'])} | {_fmt(s['mean_score'])} |"
        )
    if "calibration" in m:
        lines += ["", f"Calibration of expected scores: ECE (0-1 scale) {_fmt(m['calibration']['ece'])}"]
    return lines


def _pairwise_details(m: dict[str, Any]) -> list[str]:
    lines = [f"pairs {m['n']}, tie labels in gold {m['ties_in_gold']}", ""]
    if "absolute" in m:
        lines += [
            "Absolute grading (each response graded alone; a pair is right when the better response is graded strictly higher, ties count wrong):",
            "",
            "| scores | accuracy | ties as half | tie rate | accuracy with ties | unscorable |",
            "|---|---|---|---|---|---|",
        ]
        for source in ("integer", "expected", "first_untied_sample"):
            s = m["absolute"].get(source)
            if s:
                lines.append(
                    f"| {source} | {_with_ci(s['accuracy'])} | {_fmt(s['accuracy_ties_half'])} | {_fmt(s['tie_rate'])} | "
                    f"{_with_ci(s.get('accuracy_with_ties'))} | {s['unscorable']} |"
                )
        lines.append("")
    if "relative" in m:
        lines += [
            "Relative grading (both presentation orders):",
            "",
            "| answers | accuracy | single order | accuracy with ties | swap consistency | position bias | first-position share | unscorable |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for source, s in m["relative"].items():
            lines.append(
                f"| {source} | {_with_ci(s['accuracy'])} | {_fmt(s['accuracy_single_order'])} | {_with_ci(s.get('accuracy_with_ties'))} | "
                f"{_fmt(s['swap_consistency'])} | {_fmt(s['position_bias_rate'])} | {_fmt(s['first_position_share'])} | {s['unscorable']} |"
            )
        lines.append("")
    for part in ("absolute", "relative"):
        for source, s in (m.get(part) or {}).items():
            if isinstance(s, dict) and s.get("by_group"):
                cells = ", ".join(f"{g}: {_fmt(v['accuracy'])} (n={v['n']})" for g, v in s["by_group"].items())
                lines.append(f"- {part}/{source} accuracy by group: {cells}")
    return lines


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


# -- plots ---------------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    return plt


def _jitter(values: Sequence[float], scale: float, seed: int) -> list[float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return (np.asarray(values, dtype=float) + rng.uniform(-scale, scale, len(values))).tolist()


def _heatmap(ax, counts: list[list[int]], ticks: Sequence[str], title: str, xlabel: str, ylabel: str) -> None:
    import numpy as np

    arr = np.asarray(counts)
    ax.imshow(arr, cmap="Blues")
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set_yticks(range(len(ticks)), ticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    peak = arr.max() if arr.size else 0
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            ax.text(j, i, str(arr[i, j]), ha="center", va="center", color="white" if peak and arr[i, j] > peak / 2 else "black")


def _reliability(ax, bins: list[dict[str, Any]], low: float, high: float, title: str, xlabel: str, ylabel: str) -> None:
    used = [b for b in bins if b["n"]]
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="perfect")
    if used:
        ax.plot([b["predicted"] for b in used], [b["observed"] for b in used], marker="o", label="judge")
        for b in used:
            ax.annotate(f"n={b['n']}", (b["predicted"], b["observed"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    else:
        ax.text((low + high) / 2, (low + high) / 2, "no data", ha="center")
    ax.set_xlim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    else:  # nothing scorable to draw
        ax.text(0.5, 0.5, "no scorable rows", transform=ax.transAxes, ha="center", va="center", color="grey")


def _no_data(ax, text: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)


def plot_absolute(result: dict[str, Any], records: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """scatter.png (judge vs mean gold), confusion.png (rounded scores), calibration.png."""
    plt = _pyplot()
    m = result["metrics"]
    sources = [s for s in ("integer", "expected") if s in m]
    values = {"integer": [integer_value(r) for r in records], "expected": [r.get("expected") for r in records]}
    gold = [r["gold_mean"] for r in records]
    tag = f"{result['benchmark']} · {result['model']} · n={result['n']}"
    paths = []

    fig, ax = plt.subplots(figsize=(6, 5))
    for k, source in enumerate(sources):
        pairs = [(g, v) for g, v in zip(gold, values[source]) if v is not None]
        if pairs:
            r = _get(m, (source, "pearson", "value"))
            ax.scatter(_jitter([p[0] for p in pairs], 0.06, k), _jitter([p[1] for p in pairs], 0.06, k + 7),
                       s=14, alpha=0.6, label=f"{source} (Pearson {_fmt(r)})")
    ax.plot([1, 5], [1, 5], color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0.7, 5.3)
    ax.set_ylim(0.7, 5.3)
    ax.set_xlabel("gold score (mean of the gold runs)")
    ax.set_ylabel("judge score")
    ax.set_title(f"Judge vs gold\n{tag}", fontsize=10)
    _legend(ax)
    fig.tight_layout()
    paths.append(out_dir / "scatter.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(sources), figsize=(5 * len(sources), 4.5), squeeze=False)
    gold_round = [M.round_half_up(g) for g in gold]
    for ax, source in zip(axes[0], sources):
        pred = [None if v is None else M.round_half_up(v) for v in values[source]]
        counts = M.confusion_matrix(gold_round, pred, [1, 2, 3, 4, 5])
        _heatmap(ax, counts, ["1", "2", "3", "4", "5"], f"{source} score (rounded)", "judge", "gold (rounded mean)")
    fig.suptitle(f"Confusion matrix · {tag}", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "confusion.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    if "calibration" in m:
        _reliability(ax, m["calibration"]["bins"], 1, 5, f"Calibration of expected scores (ECE {_fmt(m['calibration']['ece'])})\n{tag}",
                     "judge expected score (bin mean)", "gold score (bin mean)")
    else:
        _no_data(ax, f"No expected scores in mode '{result['mode']}'.\nRun with --mode expected or direct.")
    fig.tight_layout()
    paths.append(out_dir / "calibration.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


_PAIR_TICKS = ["resp 1", "resp 2", "tie"]


def plot_pairwise(result: dict[str, Any], records: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """scatter.png (score of response 1 vs response 2; p(1 better) in order AB vs BA),
    confusion.png (gold vs predicted 1/2/tie), calibration.png (p(response 1 better))."""
    plt = _pyplot()
    m = result["metrics"]
    labels = [r["label"] for r in records]
    tag = f"{result['benchmark']} · {result['model']} · n={result['n']}"
    colors = {0: "tab:blue", 1: "tab:orange", 2: "tab:grey"}
    names = {0: "gold: response 1 better", 1: "gold: response 2 better", 2: "gold: tie"}
    has_abs, has_rel = "absolute" in m, "relative" in m
    # probabilities draw a finer picture than 0/1 votes when the mode has them
    rel_source = ("probs" if "probs" in m["relative"] else "votes") if has_rel else None
    abs_source = next((s for s in ("integer", "expected") if s in m.get("absolute", {})), None)
    paths = []

    panels = int(has_abs) + int(has_rel)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 5), squeeze=False)
    k = 0
    if has_abs:
        ax = axes[0][k]
        k += 1
        get = integer_value if abs_source == "integer" else (lambda g: g.get("expected"))
        for label in sorted(set(labels)):
            pts = [(get(r["absolute"]["1"]), get(r["absolute"]["2"])) for r in records if r["label"] == label]
            pts = [p for p in pts if None not in p]
            if pts:
                ax.scatter(_jitter([p[0] for p in pts], 0.08, label), _jitter([p[1] for p in pts], 0.08, label + 5),
                           s=14, alpha=0.6, color=colors[label], label=names[label])
        ax.plot([1, 5], [1, 5], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(f"response 1 ({abs_source} score)")
        ax.set_ylabel(f"response 2 ({abs_source} score)")
        ax.set_title("Absolute grading: below the diagonal = response 1 higher", fontsize=9)
        _legend(ax)
    if has_rel:
        ax = axes[0][k]
        for label in sorted(set(labels)):
            pts = []
            for r in records:
                if r["label"] != label:
                    continue
                ab, ba = r["relative"]["ab"], r["relative"]["ba"]
                if rel_source == "probs":
                    x = ab["prob_a"]
                    y = None if ba["prob_a"] is None else 1.0 - ba["prob_a"]
                else:
                    x = _vote_share(ab["votes"], "A")
                    y = _vote_share(ba["votes"], "B")
                if x is not None and y is not None:
                    pts.append((x, y))
            if pts:
                ax.scatter(_jitter([p[0] for p in pts], 0.02, label), _jitter([p[1] for p in pts], 0.02, label + 5),
                           s=14, alpha=0.6, color=colors[label], label=names[label])
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("p(response 1 better), shown first")
        ax.set_ylabel("p(response 1 better), shown second")
        ax.set_title(f"Relative grading ({rel_source}): on the diagonal = order-consistent", fontsize=9)
        _legend(ax)
    fig.suptitle(f"Judge vs gold · {tag}", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "scatter.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.5), squeeze=False)
    k = 0
    if has_abs:
        get = integer_value if abs_source == "integer" else (lambda g: g.get("expected"))
        pred = [M.pick_from_scores(get(r["absolute"]["1"]), get(r["absolute"]["2"])) for r in records]
        _heatmap(axes[0][k], M.confusion_matrix(labels, pred, [0, 1, 2]), _PAIR_TICKS,
                 f"absolute ({abs_source}): equal scores = tie", "judge", "gold")
        k += 1
    if has_rel:
        picks = [relative_picks(r, rel_source) for r in records]
        pred = [M.combine_picks(p[0], p[1]) for p in picks]
        _heatmap(axes[0][k], M.confusion_matrix(labels, pred, [0, 1, 2]), _PAIR_TICKS,
                 f"relative ({rel_source}): orders disagree = tie", "judge", "gold")
    fig.suptitle(f"Confusion matrix · {tag}", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "confusion.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    cal = []
    if has_rel and "probs" in m["relative"]:
        cal.append(("relative, answer probabilities", m["relative"]["probs"]["calibration"]))
    if has_abs and "calibration" in m["absolute"]:
        cal.append(("absolute, from the two expected-score distributions", m["absolute"]["calibration"]))
    fig, axes = plt.subplots(1, max(len(cal), 1), figsize=(5.5 * max(len(cal), 1), 5), squeeze=False)
    if not cal:
        _no_data(axes[0][0], f"No probabilities in mode '{result['mode']}'.\nRun with --mode expected or direct.")
    for ax, (title, c) in zip(axes[0], cal):
        _reliability(ax, c["bins"], 0, 1, f"{title}\nECE {_fmt(c['ece'])}", "p(response 1 better), bin mean",
                     "share where response 1 is better (gold)")
    fig.suptitle(f"Calibration · {tag}", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "calibration.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _vote_share(votes: Sequence[str | None], letter: str) -> float | None:
    counted = [v for v in votes if v is not None]
    return sum(v == letter for v in counted) / len(counted) if counted else None


def write_plots(result: dict[str, Any], records: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """The three PNGs of a run (matplotlib, Agg backend)."""
    records = sorted(records, key=lambda r: r["id"])
    if result["kind"] == "absolute":
        return plot_absolute(result, records, out_dir)
    return plot_pairwise(result, records, out_dir)
