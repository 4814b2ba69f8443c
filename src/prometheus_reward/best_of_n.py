"""Best-of-n: rerank candidate responses with the judge, and sample-then-rerank with a policy.

Strategies and their cost in judge calls, for ``n`` candidates of one prompt:

- ``"absolute"``: each candidate graded once (expected score when the mode gives one):
  ``n`` grading calls (times ``samples``).
- ``"pairwise"`` with ``tournament="knockout"``: a single-elimination bracket, byes for odd
  rounds: ``n - 1`` comparisons, each judged in both orders: ``2 (n - 1)`` relative calls.
- ``"pairwise"`` with ``tournament="round-robin"``: every pair once, both orders:
  ``n (n - 1) / 2`` comparisons = ``n (n - 1)`` relative calls; ranked by mean win
  probability (``ranking="win-rate"``) or by a Bradley-Terry fit (``ranking="bradley-terry"``).

Calls for all prompts of a round are batched into one judge call; with a
:class:`~prometheus_reward.cache.JudgmentCache`, judgments already made are free.

Example:
    >>> from prometheus_reward.best_of_n import rerank
    >>> results = rerank(["Say hi."], [["Hello!", "Go away.", "Hi there!"]], judge, "helpfulness")  # doctest: +SKIP
    >>> results[0].best, len(results[0].scores)                                                     # doctest: +SKIP
    (2, 3)
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Literal, Sequence

from .cache import JudgmentCache, cached_compare, cached_grade, open_cache

logger = logging.getLogger(__name__)

Strategy = Literal["absolute", "pairwise"]
Tournament = Literal["knockout", "round-robin"]
Ranking = Literal["win-rate", "bradley-terry"]


@dataclass
class Comparison:
    """One pairwise match between candidates ``i`` (shown as A first) and ``j``."""

    i: int
    j: int
    prob_i: float | None
    winner: int | None
    consistent: bool
    feedback: str = ""
    error: str | None = None


@dataclass
class RerankResult:
    """The reranking of one prompt's candidates.

    Attributes:
        best: index of the chosen candidate, or None when no candidate could be judged.
        scores: per candidate: the (expected) score for ``absolute``; the mean win probability
            (win-rate), the Bradley-Terry win probability against a random other candidate, or
            (knockout) the mean win probability over the matches it played; None when unjudged.
        feedback: per candidate, the judge's feedback (absolute strategy; empty for pairwise,
            whose feedback is in ``comparisons``).
        order: candidate indices from best to worst (unjudged ones last).
        comparisons: the pairwise matches played.
        judge_calls: evaluator prompts this prompt cost (cache hits included).
        errors: per candidate, why it could not be judged.
    """

    best: int | None
    scores: list[float | None]
    feedback: list[str]
    order: list[int]
    strategy: str
    comparisons: list[Comparison] = field(default_factory=list)
    judge_calls: int = 0
    errors: list[str | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_calls(n: int, strategy: Strategy = "absolute", tournament: Tournament = "knockout", samples: int = 1) -> int:
    """Evaluator prompts one prompt with ``n`` candidates costs (before caching).

    Example:
        >>> judge_calls(4, "absolute"), judge_calls(4, "pairwise", "knockout"), judge_calls(4, "pairwise", "round-robin")
        (4, 6, 12)
    """
    if strategy == "absolute":
        return n * samples
    if tournament == "knockout":
        return 2 * max(n - 1, 0) * samples
    return n * (n - 1) * samples


def bradley_terry(wins: Sequence[Sequence[float]], l2: float = 1e-2) -> list[float]:
    """Bradley-Terry log-strengths from a (soft) win matrix ``wins[i][j]`` = how much ``i`` beat ``j``
    (e.g. p(i better than j), 0 where not played). Fitted by maximum likelihood with scipy and a
    small L2 penalty (keeps strengths finite when a candidate wins every match); centred at 0.

    Example:
        >>> s = bradley_terry([[0, 0.9, 0.8], [0.1, 0, 0.6], [0.2, 0.4, 0]])
        >>> s[0] > s[1] > s[2]
        True
    """
    import numpy as np
    from scipy.optimize import minimize

    w = np.asarray(wins, dtype=float)
    n = w.shape[0]
    if n == 0:
        return []

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[:, None] - theta[None, :]
        # log sigmoid(diff), stably
        log_p = -np.logaddexp(0.0, -diff)
        nll = -(w * log_p).sum() + l2 * (theta ** 2).sum()
        p = 1.0 / (1.0 + np.exp(-diff))
        grad_pair = w * (1.0 - p)  # d/dtheta_i of w_ij log sigma(theta_i - theta_j)
        grad = -(grad_pair.sum(axis=1) - grad_pair.sum(axis=0)) + 2 * l2 * theta
        return float(nll), grad

    result = minimize(objective, np.zeros(n), jac=True, method="L-BFGS-B")
    theta = result.x - result.x.mean()
    return [float(t) for t in theta]


def _argbest(scores: Sequence[float | None]) -> int | None:
    live = [(s, -i) for i, s in enumerate(scores) if s is not None]
    return -max(live)[1] if live else None  # ties go to the lower index


def _order(scores: Sequence[float | None]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))


def _listify(value: Any, n: int) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{len(value)} values for {n} prompts")
        return list(value)
    return [value] * n


def rerank(
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    judge: Any,
    rubric: Any,
    strategy: Strategy = "absolute",
    *,
    tournament: Tournament = "knockout",
    ranking: Ranking = "win-rate",
    reference_answers: Sequence[str | None] | str | None = None,
    mode: str = "expected",
    samples: int = 1,
    cache: JudgmentCache | None = None,
    **generation_overrides: Any,
) -> list[RerankResult]:
    """Pick the best of each prompt's candidates with the judge.

    Args:
        prompts: one instruction per prompt.
        candidates: per prompt, the candidate responses (any number, may differ by prompt).
        judge: a :class:`~prometheus_reward.judge.Judge`.
        rubric: one rubric, or one per prompt.
        strategy: ``absolute`` (n calls: grade each, rank by expected score) or ``pairwise``
            (both presentation orders per comparison).
        tournament: pairwise only: ``knockout`` (2(n-1) calls) or ``round-robin`` (n(n-1) calls).
        ranking: round-robin only: ``win-rate`` or ``bradley-terry``.
        reference_answers: None, one for all, or one per prompt.
        mode: judge mode (``expected`` by default: scores and probabilities, not only integers).
        samples: judgments per call, averaged.
        cache: a :class:`JudgmentCache`; only misses reach the judge.
        **generation_overrides: ``max_new_tokens``, ``temperature``... for the judge.

    Returns:
        One :class:`RerankResult` per prompt. Unjudgeable candidates score None and are never
        picked; ``best`` is None when no candidate could be judged.

    Example:
        >>> r = rerank(["2+2?"], [["4", "5"]], judge, "reasoning", strategy="pairwise", tournament="round-robin",
        ...            ranking="bradley-terry", mode="direct")  # doctest: +SKIP
    """
    if strategy not in ("absolute", "pairwise"):
        raise ValueError(f"unknown strategy {strategy!r}; choose absolute or pairwise")
    if tournament not in ("knockout", "round-robin"):
        raise ValueError(f"unknown tournament {tournament!r}; choose knockout or round-robin")
    if ranking not in ("win-rate", "bradley-terry"):
        raise ValueError(f"unknown ranking {ranking!r}; choose win-rate or bradley-terry")
    prompts = list(prompts)
    candidates = [list(c) for c in candidates]
    if len(candidates) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
    rubrics = _listify(rubric, len(prompts))
    references = _listify(reference_answers, len(prompts))
    kwargs = dict(mode=mode, samples=samples, **generation_overrides)
    if strategy == "absolute":
        return _rerank_absolute(prompts, candidates, judge, rubrics, references, cache, kwargs)
    if tournament == "knockout":
        return _rerank_knockout(prompts, candidates, judge, rubrics, references, cache, kwargs)
    return _rerank_round_robin(prompts, candidates, judge, rubrics, references, cache, kwargs, ranking)


def _rerank_absolute(prompts, candidates, judge, rubrics, references, cache, kwargs) -> list[RerankResult]:
    flat = [(p, k) for p, cands in enumerate(candidates) for k in range(len(cands))]
    grades = cached_grade(
        judge, cache,
        [prompts[p] for p, _ in flat], [candidates[p][k] for p, k in flat],
        [rubrics[p] for p, _ in flat], [references[p] for p, _ in flat], errors="return", **kwargs,
    ) if flat else []
    results = []
    cursor = 0
    for p, cands in enumerate(candidates):
        mine = grades[cursor : cursor + len(cands)]
        cursor += len(cands)
        scores = [g.value for g in mine]
        results.append(RerankResult(
            best=_argbest(scores), scores=scores, feedback=[g.feedback for g in mine], order=_order(scores),
            strategy="absolute", judge_calls=len(cands) * kwargs["samples"], errors=[g.error for g in mine],
        ))
    return results


def _play(matches, prompts, candidates, judge, rubrics, references, cache, kwargs) -> list[Comparison]:
    """Judge (prompt, i, j) matches in one batched call (both orders)."""
    if not matches:
        return []
    prefs = cached_compare(
        judge, cache,
        [prompts[p] for p, _, _ in matches], [candidates[p][i] for p, i, _ in matches],
        [candidates[p][j] for p, _, j in matches], [rubrics[p] for p, _, _ in matches],
        [references[p] for p, _, _ in matches], swap=True, errors="return", **kwargs,
    )
    played = []
    for (p, i, j), pref in zip(matches, prefs):
        winner = i if pref.winner == "A" else j if pref.winner == "B" else None
        played.append(Comparison(i, j, pref.prob_a, winner, pref.consistent, pref.feedback, pref.error))
    return played


def _rerank_knockout(prompts, candidates, judge, rubrics, references, cache, kwargs) -> list[RerankResult]:
    alive = [list(range(len(c))) for c in candidates]
    history: list[list[Comparison]] = [[] for _ in prompts]
    while True:
        matches = []
        for p, survivors in enumerate(alive):
            for k in range(0, len(survivors) - 1, 2):
                matches.append((p, survivors[k], survivors[k + 1]))
        if not matches:
            break
        played = _play(matches, prompts, candidates, judge, rubrics, references, cache, kwargs)
        nxt: list[list[int]] = [[] for _ in prompts]
        by_prompt: dict[int, list[Comparison]] = {}
        for (p, _, _), comp in zip(matches, played):
            history[p].append(comp)
            by_prompt.setdefault(p, []).append(comp)
        for p, survivors in enumerate(alive):
            if len(survivors) < 2:
                nxt[p] = survivors
                continue
            for comp in by_prompt.get(p, []):
                if comp.winner is not None:
                    nxt[p].append(comp.winner)
                elif comp.prob_i is not None:  # an exact tie: keep the earlier candidate
                    nxt[p].append(comp.i)
                # both unjudgeable: neither advances
            if len(survivors) % 2:
                nxt[p].append(survivors[-1])  # bye
        alive = nxt
    results = []
    for p, cands in enumerate(candidates):
        probs: dict[int, list[float]] = {}
        for comp in history[p]:
            if comp.prob_i is None:
                continue
            probs.setdefault(comp.i, []).append(comp.prob_i)
            probs.setdefault(comp.j, []).append(1.0 - comp.prob_i)
        scores = [sum(probs[k]) / len(probs[k]) if k in probs else None for k in range(len(cands))]
        best = alive[p][0] if alive[p] else None
        if len(cands) == 1:
            best, scores = 0, [None]
        # the knockout winner first, then the rest by their mean win probability
        order = _order(scores)
        if best is not None:
            order = [best] + [k for k in order if k != best]
        results.append(RerankResult(
            best=best, scores=scores, feedback=[""] * len(cands), order=order, strategy="pairwise-knockout",
            comparisons=history[p], judge_calls=2 * len(history[p]) * kwargs["samples"],
            errors=[None] * len(cands),
        ))
    return results


def _rerank_round_robin(prompts, candidates, judge, rubrics, references, cache, kwargs, ranking) -> list[RerankResult]:
    matches = [(p, i, j) for p, cands in enumerate(candidates) for i, j in combinations(range(len(cands)), 2)]
    played = _play(matches, prompts, candidates, judge, rubrics, references, cache, kwargs)
    history: list[list[Comparison]] = [[] for _ in prompts]
    for (p, _, _), comp in zip(matches, played):
        history[p].append(comp)
    results = []
    for p, cands in enumerate(candidates):
        n = len(cands)
        wins = [[0.0] * n for _ in range(n)]
        seen = [0] * n
        for comp in history[p]:
            if comp.prob_i is None:
                continue
            wins[comp.i][comp.j] += comp.prob_i
            wins[comp.j][comp.i] += 1.0 - comp.prob_i
            seen[comp.i] += 1
            seen[comp.j] += 1
        if ranking == "win-rate":
            scores = [sum(wins[k]) / seen[k] if seen[k] else None for k in range(n)]
        else:
            strengths = bradley_terry(wins) if n > 1 else [0.0] * n
            # the fitted probability of beating a random other candidate: on the win-rate scale
            scores = [
                sum(1.0 / (1.0 + math.exp(strengths[j] - strengths[k])) for j in range(n) if j != k) / (n - 1)
                if seen[k] else None
                for k in range(n)
            ]
        if n == 1:
            scores = [None]
        best = 0 if n == 1 else _argbest(scores)
        results.append(RerankResult(
            best=best, scores=scores, feedback=[""] * n, order=_order(scores),
            strategy=f"pairwise-round-robin-{ranking}", comparisons=history[p],
            judge_calls=2 * len(history[p]) * kwargs["samples"], errors=[None] * n,
        ))
    return results


# -- sampling -----------------------------------------------------------------------------------------
@dataclass
class BestOfNResult:
    """Sampled completions of one prompt and their reranking."""

    prompt: Any
    completions: list[str]
    best: int | None
    chosen: str | None
    scores: list[float | None]
    rerank: RerankResult

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt_text(prompt: Any) -> str:
    """The text the judge reads for a prompt: the string itself, or the last user message of a
    conversation (a list of ``{"role", "content"}`` messages)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
                return message["content"]
    raise ValueError("prompt must be a string or a list of messages with a user turn")


def sample_completions(
    policy: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    n: int,
    batch_size: int = 8,
    **generation_kwargs: Any,
) -> list[list[str]]:
    """``n`` sampled completions per prompt with ``policy.generate(num_return_sequences=n)``, in
    batches of ``batch_size`` prompts (left padding). Conversational prompts go through the
    tokenizer's chat template (a plain ``role: content`` transcript when it has none).

    Example:
        >>> completions = sample_completions(model, tokenizer, ["Say hi."], n=4, max_new_tokens=32)  # doctest: +SKIP
    """
    import torch

    kwargs = {"do_sample": True, "max_new_tokens": 128, **generation_kwargs}
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = []
    for prompt in prompts:
        if isinstance(prompt, str):
            texts.append(prompt)
        elif getattr(tokenizer, "chat_template", None):
            texts.append(tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True))
        else:
            # base models (the embedded Gemma among them) ship no chat template: a plain transcript
            logger.warning("the policy tokenizer has no chat template; conversations are sent as plain text")
            texts.append("".join(f"{m['role']}: {m['content']}\n" for m in prompt) + "assistant: ")
    out: list[list[str]] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right end of every row
    try:
        device = next(policy.parameters()).device
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            # chat templates already carry the BOS token
            templated = bool(getattr(tokenizer, "chat_template", None)) and any(
                not isinstance(p, str) for p in prompts[start : start + batch_size])
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=not templated).to(device)
            with torch.no_grad():
                generated = policy.generate(**enc, num_return_sequences=n, pad_token_id=tokenizer.pad_token_id, **kwargs)
            new = generated[:, enc["input_ids"].shape[1]:]
            decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
            for k in range(len(batch)):
                out.append(decoded[k * n : (k + 1) * n])
    finally:
        tokenizer.padding_side = side
    return out


def best_of_n(
    policy: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    n: int,
    judge: Any,
    rubric: Any,
    *,
    strategy: Strategy = "absolute",
    tournament: Tournament = "knockout",
    ranking: Ranking = "win-rate",
    mode: str = "expected",
    samples: int = 1,
    reference_answers: Sequence[str | None] | str | None = None,
    cache: JudgmentCache | None = None,
    batch_size: int = 8,
    judge_kwargs: dict[str, Any] | None = None,
    **generation_kwargs: Any,
) -> list[BestOfNResult]:
    """Sample ``n`` completions per prompt from ``policy`` and keep the judge's favourite.

    ``generation_kwargs`` go to ``policy.generate`` (``max_new_tokens``, ``temperature``,
    ``top_p``...); ``judge_kwargs`` to the judge (``max_new_tokens`` of its feedback...). Costs
    :func:`judge_calls` evaluator prompts per prompt.

    Example:
        >>> results = best_of_n(model, tokenizer, ["Say hi."], 4, judge, "helpfulness", max_new_tokens=32)  # doctest: +SKIP
        >>> results[0].chosen                                                                              # doctest: +SKIP
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    completions = sample_completions(policy, tokenizer, prompts, n, batch_size=batch_size, **generation_kwargs)
    ranked = rerank(
        [prompt_text(p) for p in prompts], completions, judge, rubric, strategy, tournament=tournament,
        ranking=ranking, reference_answers=reference_answers, mode=mode, samples=samples, cache=cache,
        **(judge_kwargs or {}),
    )
    return [
        BestOfNResult(prompt, comps, r.best, None if r.best is None else comps[r.best], r.scores, r)
        for prompt, comps, r in zip(prompts, completions, ranked)
    ]


# -- CLI --------------------------------------------------------------------------------------------------
def add_rerank_arguments(parser: argparse.ArgumentParser) -> None:
    """--strategy, --tournament, --ranking (shared with the labeling command)."""
    group = parser.add_argument_group("reranking")
    group.add_argument("--strategy", default="absolute", choices=["absolute", "pairwise"],
                       help="absolute: n grading calls; pairwise: both orders per comparison")
    group.add_argument("--tournament", default="knockout", choices=["knockout", "round-robin"],
                       help="pairwise: knockout 2(n-1) calls, round-robin n(n-1) calls")
    group.add_argument("--ranking", default="win-rate", choices=["win-rate", "bradley-terry"],
                       help="round-robin ranking")


def add_parser(subparsers: Any) -> None:
    """Register ``prometheus-reward best-of-n``."""
    from .cli_args import add_generation_arguments, add_judge_arguments

    p = subparsers.add_parser("best-of-n", help="sample n completions with a policy and keep the judge's best")
    p.add_argument("input", help="JSONL/JSON/CSV/Parquet with a prompt column (text or messages)")
    p.add_argument("-o", "--output", required=True, help="JSONL: completions, scores, chosen, per prompt")
    p.add_argument("--policy", required=True, help="the policy model (hub id, folder, 'embedded', 'embedded:tiny-random')")
    p.add_argument("-n", "--n", type=int, default=4, help="completions per prompt")
    p.add_argument("--rubric", default=None, help="preset, YAML file or text (a 'rubric' column wins)")
    p.add_argument("--prompt-column", default=None)
    p.add_argument("--reference-column", default=None)
    p.add_argument("--policy-max-new-tokens", type=int, default=128)
    p.add_argument("--policy-temperature", type=float, default=1.0)
    p.add_argument("--policy-top-p", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate/judge round")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--sft-output", default=None, help="also write rejection-sampling SFT rows {prompt, completion}")
    p.add_argument("--min-score", type=float, default=None, help="SFT rows only when the best score reaches this")
    p.add_argument("--cache", default=None, help=f"sqlite judgment cache (default ${'PROMETHEUS_REWARD_CACHE'} or the cache home)")
    p.add_argument("--no-cache", action="store_true")
    add_rerank_arguments(p)
    add_judge_arguments(p)
    add_generation_arguments(p)
    p.set_defaults(func=cmd_best_of_n, mode="expected")


def load_policy(path_or_id: str, dtype: str = "auto", device_map: str | None = None):
    """A causal LM and its tokenizer (the embedded aliases resolve to their local folders)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .embedded import resolve_model_path

    path = resolve_model_path(path_or_id)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device_map)
    model.eval()
    return model, tokenizer


def sft_row(prompt: Any, completion: str) -> dict[str, Any]:
    """A TRL SFT row: prompt-completion, conversational when the prompt is."""
    if isinstance(prompt, str):
        return {"prompt": prompt, "completion": completion}
    return {"prompt": list(prompt), "completion": [{"role": "assistant", "content": completion}]}


def cmd_best_of_n(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm.auto import tqdm

    from .cli_args import generation_overrides, judge_from_args, score_summary_table
    from .io import JsonlWriter, chunks, pick_column, read_rows

    rows = read_rows(args.input, args.limit)
    if not rows:
        raise SystemExit(f"error: {args.input} has no rows")
    prompt_col = pick_column(rows[0], args.prompt_column, ("prompt", "instruction", "question", "messages"), "prompt")
    ref_col = args.reference_column or ("reference_answer" if "reference_answer" in rows[0] else None)
    if "rubric" not in rows[0] and args.rubric is None:
        raise SystemExit("error: give --rubric or a 'rubric' column in the data")
    policy, tokenizer = load_policy(args.policy, dtype=args.dtype, device_map=args.device_map)
    judge = judge_from_args(args)
    cache = None if args.no_cache else open_cache(args.cache)
    overrides = generation_overrides(args)
    gen = {"max_new_tokens": args.policy_max_new_tokens, "temperature": args.policy_temperature, "top_p": args.policy_top_p}
    best_scores: list[float | None] = []
    sft_writer = JsonlWriter(args.sft_output) if args.sft_output else None
    sft_count = 0
    try:
        with JsonlWriter(args.output) as writer, tqdm(total=len(rows), desc="best-of-n", unit="prompt") as bar:
            for batch in chunks(rows, args.batch_size):
                results = best_of_n(
                    policy, tokenizer, [r[prompt_col] for r in batch], args.n, judge,
                    [r.get("rubric") or args.rubric for r in batch],
                    strategy=args.strategy, tournament=args.tournament, ranking=args.ranking, mode=args.mode,
                    samples=args.samples, reference_answers=[r.get(ref_col) if ref_col else None for r in batch],
                    cache=cache, batch_size=args.batch_size, judge_kwargs=overrides, **gen,
                )
                out, sft = [], []
                for row, res in zip(batch, results):
                    best_score = None if res.best is None else res.scores[res.best]
                    best_scores.append(best_score)
                    out.append({**row, "completions": res.completions, "scores": res.scores, "best_index": res.best,
                                "chosen": res.chosen, "best_score": best_score,
                                "feedback": res.rerank.feedback, "strategy": res.rerank.strategy,
                                "judge_calls": res.rerank.judge_calls})
                    keep = res.best is not None and (
                        args.min_score is None or (best_score is not None and best_score >= args.min_score))
                    if keep:
                        sft.append(sft_row(row[prompt_col], res.chosen))
                writer.write_many(out)
                if sft_writer and sft:
                    sft_writer.write_many(sft)
                    sft_count += len(sft)
                bar.update(len(batch))
    finally:
        if sft_writer:
            sft_writer.close()
    extra: dict[str, Any] = {"n": args.n, "strategy": args.strategy}
    if cache is not None:
        extra.update({f"cache {k}": v for k, v in cache.stats().items()})
    if args.sft_output:
        extra["sft rows"] = sft_count
    Console().print(score_summary_table(
        f"{args.output} (best of {args.n}, judge {judge.model_id}, mode={args.mode})",
        [None if s is None else max(1, min(5, round(s))) if args.strategy == "absolute" else None for s in best_scores],
        best_scores, extra,
    ))
    return 0
