"""Best-of-n: sample n completions per prompt with a policy, rerank them with the judge, keep the
best (and optionally write rejection-sampling SFT rows).

:func:`best_of_n` works on prompts in memory; :func:`write_best_of_n` drives a whole data file
(the ``best-of-n`` command and ``recipes/best_of_n.py`` both call it), writing one output row per
prompt as each batch finishes.

Example:
    >>> from prometheus_reward.best_of_n import best_of_n, load_policy
    >>> policy, tokenizer = load_policy("embedded:tiny-random")                               # doctest: +SKIP
    >>> results = best_of_n(policy, tokenizer, ["Say hi."], 4, judge, "helpfulness", max_new_tokens=32)  # doctest: +SKIP
    >>> results[0].chosen                                                                     # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from .config import JudgingConfig, RerankConfig
from .rerank import RerankResult, rerank
from .rows import RowError, RubricColumn, reference_for, require_prompt

logger = logging.getLogger(__name__)


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


def load_policy(path_or_id: str, dtype: str = "auto", device_map: str | None = None):
    """A causal LM and its tokenizer (the embedded aliases resolve to their local folders)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .embedded import resolve_model_path

    path = resolve_model_path(path_or_id)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device_map)
    model.eval()
    return model, tokenizer


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
    rerank_config: RerankConfig | None = None,
    judging: JudgingConfig | None = None,
    reference_answers: Sequence[str | None] | str | None = None,
    batch_size: int = 8,
    **generation_kwargs: Any,
) -> list[BestOfNResult]:
    """Sample ``n`` completions per prompt from ``policy`` and keep the judge's favourite.

    ``generation_kwargs`` go to ``policy.generate`` (the *policy's* ``max_new_tokens``,
    ``temperature``, ``top_p``...); the judge's settings are ``judging`` and the ranking
    ``rerank_config``. The judge reads each prompt as :func:`prometheus_reward.rows.prompt_text`
    does (the multi-turn policy shared by every entry point). Costs
    :func:`~prometheus_reward.rerank.judge_calls` evaluator prompts per prompt (cache hits are free
    with a :class:`~prometheus_reward.cached.CachedJudge`).

    Example:
        >>> results = best_of_n(model, tokenizer, ["Say hi."], 4, judge, "helpfulness", max_new_tokens=32)  # doctest: +SKIP
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    rerank_config = rerank_config or RerankConfig()
    judging = judging or JudgingConfig()
    texts = [require_prompt(p, row) for row, p in enumerate(prompts)]
    completions = sample_completions(policy, tokenizer, prompts, n, batch_size=batch_size, **generation_kwargs)
    ranked = rerank(
        texts, completions, judge, rubric, rerank_config.strategy, tournament=rerank_config.tournament,
        ranking=rerank_config.ranking, reference_answers=reference_answers, mode=judging.mode,
        samples=judging.samples, **judging.sampling_overrides(),
    )
    return [
        BestOfNResult(prompt, comps, r.best, None if r.best is None else comps[r.best], r.scores, r)
        for prompt, comps, r in zip(prompts, completions, ranked)
    ]


def sft_row(prompt: Any, completion: str) -> dict[str, Any]:
    """A TRL SFT row: prompt-completion, conversational when the prompt is."""
    if isinstance(prompt, str):
        return {"prompt": prompt, "completion": completion}
    return {"prompt": list(prompt), "completion": [{"role": "assistant", "content": completion}]}


@dataclass
class BestOfNSummary:
    """What :func:`write_best_of_n` produced."""

    rows: int = 0
    chosen: int = 0
    sft_rows: int = 0
    bad_rows: int = 0
    best_scores: list[float | None] = field(default_factory=list)
    unreadable: int = 0
    skipped_output: str | None = None


def write_best_of_n(
    rows: Sequence[Mapping[str, Any]] | Any,
    policy: Any,
    tokenizer: Any,
    judge: Any,
    *,
    output: Any,
    n: int = 4,
    rubric: Any = None,
    prompt_column: str = "prompt",
    reference_column: str | None = "reference_answer",
    rubric_column: str = "rubric",
    rerank_config: RerankConfig | None = None,
    judging: JudgingConfig | None = None,
    generation: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    sft_output: Any = None,
    min_score: float | None = None,
    progress: bool = True,
    skipped_output: Any = None,
) -> BestOfNSummary:
    """Best-of-n over data rows, written as JSONL as each batch finishes: every input column plus
    ``completions``, ``scores``, ``best_index``, ``chosen``, ``best_score``, ``feedback``,
    ``strategy``, ``judge_calls``, ``comparisons`` and ``error`` (a bad row is written with its
    error and no completions, never dropped). With ``sft_output``, rejection-sampling rows
    ``{prompt, completion}`` of the chosen completions (those reaching ``min_score``).

    ``rows`` may be what :func:`~prometheus_reward.io.read_data` read (rows are then named by
    their number in the file): its malformed lines set aside go to ``skipped_output`` (default
    ``<output stem>.skipped.jsonl``, replaced each run like the output; an old one is removed
    when there are none), never to the policy or the judge.

    Example:
        >>> summary = write_best_of_n(rows, policy, tokenizer, judge, output="best.jsonl", n=4, rubric="helpfulness")  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from .io import DataRows, JsonlWriter, chunks, skipped_path, write_skipped

    rerank_config = rerank_config or RerankConfig()
    rubrics = RubricColumn(rubric, rubric_column)
    data = DataRows.of(rows)
    rows, numbers = data.rows, data.numbers
    summary = BestOfNSummary()
    side = write_skipped(skipped_output or skipped_path(output), data.bad_lines)
    summary.unreadable = len(data.bad_lines)
    summary.skipped_output = None if side is None else str(side)
    for line in data.bad_lines:
        logger.warning("set aside: %s", line.reason)
    sft_writer = JsonlWriter(sft_output) if sft_output else None
    try:
        with JsonlWriter(output) as writer, tqdm(total=len(rows), desc="best-of-n", unit="prompt", disable=not progress) as bar:
            for start, batch in zip(range(0, len(rows), batch_size), chunks(rows, batch_size)):
                out: list[dict[str, Any]] = [dict(row) for row in batch]
                live, problems = [], {}
                rubric_of, reference_of = {}, {}
                for k, row in enumerate(batch):
                    index = numbers[start + k]
                    try:
                        require_prompt(row.get(prompt_column), index, prompt_column)
                        rubric_of[k] = rubrics.resolve(row.get(rubric_column), index)
                        reference_of[k] = reference_for(row.get(reference_column) if reference_column else None,
                                                        None, index, reference_column or "reference_answer")
                        live.append(k)
                    except RowError as err:
                        problems[k] = str(err)
                results = best_of_n(
                    policy, tokenizer, [batch[k][prompt_column] for k in live], n, judge, [rubric_of[k] for k in live],
                    rerank_config=rerank_config, judging=judging, reference_answers=[reference_of[k] for k in live],
                    batch_size=batch_size, **dict(generation or {}),
                ) if live else []
                sft = []
                for k, res in zip(live, results):
                    best_score = None if res.best is None else res.scores[res.best]
                    summary.best_scores.append(best_score)
                    out[k].update({
                        "completions": res.completions, "scores": res.scores, "best_index": res.best,
                        "chosen": res.chosen, "best_score": best_score, "feedback": res.rerank.feedback,
                        "strategy": res.rerank.strategy, "judge_calls": res.rerank.judge_calls,
                        "comparisons": [asdict(c) for c in res.rerank.comparisons],
                        "error": None if res.best is not None else "no candidate could be judged",
                    })
                    if res.best is not None:
                        summary.chosen += 1
                        if min_score is None or (best_score is not None and best_score >= min_score):
                            sft.append(sft_row(batch[k][prompt_column], res.chosen))
                for k, problem in problems.items():
                    logger.warning("%s", problem)
                    summary.bad_rows += 1
                    summary.best_scores.append(None)
                    out[k].update({"completions": [], "scores": [], "best_index": None, "chosen": None,
                                   "best_score": None, "error": problem})
                writer.write_many(out)
                if sft_writer and sft:
                    sft_writer.write_many(sft)
                    summary.sft_rows += len(sft)
                summary.rows += len(batch)
                bar.update(len(batch))
    finally:
        if sft_writer:
            sft_writer.close()
    return summary
