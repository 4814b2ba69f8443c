"""Cut the small benchmark slices in ``tests/fixtures/benchmarks/`` from the full upstream files.

The tests must not read anything outside the repository, so they run on slices of the
prometheus-eval benchmark files. Every row of a slice is the upstream row byte for byte (the
upstream JSON files are ``json.dumps(rows, indent=4)`` output and the Auto-J file is JSONL of
``json.dumps(row)``; both round trips are checked before anything is written), and rows keep their
upstream order, so the first rows of a slice are the first rows upstream.

    python scripts/cut_benchmark_fixtures.py                       # the pinned files (downloaded once)
    python scripts/cut_benchmark_fixtures.py --source DIR          # a local copy of eval/benchmark/data
    python scripts/cut_benchmark_fixtures.py --source DIR --check  # compare with the committed slices

Selection rules (deterministic; described in ``tests/fixtures/benchmarks/README.md``):
- Vicuna, MT-Bench: the first 5 rows, then per category (file order) its first row whose
  ``response_source`` is not yet in the slice (else the category's first row).
- HHH: the first 3 rows of each ``source`` (harmless, helpful, honest, other).
- Auto-J: the first 2 rows, then walking the file the first row of each label in each scenario
  until every label (0, 1, 2 = tie) has 5 rows.
- Feedback corpus: 200 GPT-4 feedbacks each from Vicuna and MT-Bench: all that mention a score
  (the word "score" or "[RESULT]", or end in a digit), the rest a seeded draw, half from those with
  some digit and half from the others.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "benchmarks"
CORPUS = "gpt4_feedback_corpus.jsonl"
PER_SOURCE = 200


def _json_rows(path: Path) -> tuple[str, list[dict]]:
    text = path.read_text(encoding="utf-8")
    rows = json.loads(text)
    if json.dumps(rows, indent=4) != text:
        raise SystemExit(f"{path}: not in the json.dumps(indent=4) form; rows could not be copied byte for byte")
    return text, rows


def _jsonl_rows(path: Path) -> tuple[list[str], list[dict]]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    rows = [json.loads(line) for line in lines]
    if any(json.dumps(row) + "\n" != line for row, line in zip(rows, lines)):
        raise SystemExit(f"{path}: a line is not json.dumps(row); rows could not be copied byte for byte")
    return lines, rows


def pick_graded(rows: list[dict]) -> list[int]:
    picked = list(range(5))
    sources = {rows[i]["response_source"] for i in picked}
    categories = list(dict.fromkeys(r["category"] for r in rows))
    for category in categories:
        if any(rows[i]["category"] == category for i in picked):
            continue
        candidates = [i for i, r in enumerate(rows) if r["category"] == category]
        fresh = [i for i in candidates if rows[i]["response_source"] not in sources]
        choice = (fresh or candidates)[0]
        picked.append(choice)
        sources.add(rows[choice]["response_source"])
    return sorted(picked)


def pick_hhh(rows: list[dict]) -> list[int]:
    picked: list[int] = []
    for source in dict.fromkeys(r["source"] for r in rows):
        picked += [i for i, r in enumerate(rows) if r["source"] == source][:3]
    return sorted(picked)


def pick_autoj(rows: list[dict]) -> list[int]:
    picked = [0, 1]
    seen = {(rows[i]["scenario"], rows[i]["label"]) for i in picked}
    count = {0: 0, 1: 0, 2: 0}
    for i in picked:
        count[rows[i]["label"]] += 1
    for i, row in enumerate(rows):
        key = (row["scenario"], row["label"])
        if key not in seen and count[row["label"]] < 5:
            picked.append(i)
            seen.add(key)
            count[row["label"]] += 1
    return sorted(picked)


def _mentions_score(text: str) -> bool:
    return bool(re.search(r"score|\[RESULT\]", text, re.IGNORECASE) or re.search(r"\d\W*$", text))


def pick_feedbacks(name: str, rows: list[dict], seed: int) -> list[dict]:
    items = [
        {"benchmark": name, "row": i, "run": k, "score": score, "feedback": feedback}
        for i, row in enumerate(rows)
        for k, (feedback, score) in enumerate(zip(row["gpt4_feedback"], row["gpt4_score"]))
    ]
    scored = [it for it in items if _mentions_score(it["feedback"])]
    digits = [it for it in items if not _mentions_score(it["feedback"]) and re.search(r"\d", it["feedback"])]
    plain = [it for it in items if not re.search(r"\d", it["feedback"]) and not _mentions_score(it["feedback"])]
    rng = random.Random(seed)
    left = PER_SOURCE - len(scored)
    chosen = scored + rng.sample(digits, left // 2) + rng.sample(plain, left - left // 2)
    return sorted(chosen, key=lambda it: (it["row"], it["run"]))


def _check_round_trip(name: str, rows: list[dict]) -> None:
    """Every rendered prompt of the full set splits into fields and re-renders to itself (the
    tests check the slices; this covers the other rows)."""
    from prometheus_reward.metaeval.data import render_absolute_prompt, split_absolute_prompt

    keys = ("chosen_instruction", "rejected_instruction") if "hhh" in name else ("instruction",)
    for i, row in enumerate(rows):
        for key in keys:
            if render_absolute_prompt(split_absolute_prompt(row[key])) != row[key]:
                raise SystemExit(f"{name} row {i}: field '{key}' does not round-trip")


def cut(source: dict[str, Path]) -> dict[str, str]:
    """File name -> text of the slice."""
    out: dict[str, str] = {}
    corpus: list[dict] = []
    for bench, name in (("vicuna", "vicuna_eval.json"), ("mt_bench", "mt_bench_eval.json"), ("hhh", "hhh_alignment_eval.json")):
        text, rows = _json_rows(source[bench])
        picked = pick_hhh(rows) if bench == "hhh" else pick_graded(rows)
        sliced = json.dumps([rows[i] for i in picked], indent=4)
        for i in picked:  # the row's own text, as it stands upstream (4 more spaces of list indentation)
            row_text = "\n".join("    " + line for line in json.dumps(rows[i], indent=4).splitlines())
            assert row_text in text and row_text in sliced, (name, i)
        out[name] = sliced
        _check_round_trip(name, rows)
        if bench != "hhh":
            corpus += pick_feedbacks(bench, rows, seed=0 if bench == "vicuna" else 1)
    lines, rows = _jsonl_rows(source["autoj"])
    out["autoj_pairwise.jsonl"] = "".join(lines[i] for i in pick_autoj(rows))
    out[CORPUS] = "".join(json.dumps(it) + "\n" for it in corpus)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="folder with the full upstream files (default: the pinned download)")
    parser.add_argument("--check", action="store_true", help="compare with the committed slices, write nothing")
    args = parser.parse_args(argv)
    from prometheus_reward.metaeval.data import resolve_path
    from prometheus_reward.metaeval.download import resolve_benchmark_data

    source = {}
    for bench in ("vicuna", "mt_bench", "hhh", "autoj"):
        found = resolve_benchmark_data(bench, args.source)
        source[bench] = resolve_path(bench, found)
    slices = cut(source)
    if args.check:
        differ = [name for name, text in slices.items() if (OUT / name).read_text(encoding="utf-8") != text]
        print("slices differ: " + ", ".join(differ) if differ else
              f"{len(slices)} slices match the sources; every rendered prompt of the full sets round-trips")
        return 1 if differ else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in slices.items():
        (OUT / name).write_text(text, encoding="utf-8")
        rows = text.count("\n") if name.endswith(".jsonl") else len(json.loads(text))
        print(f"{OUT / name}: {len(text.encode())} bytes, {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
