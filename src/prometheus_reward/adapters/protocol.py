"""What the PPO engines send, read once for the adapters and the reward server; and what they can
feed a reward (:data:`OPENRLHF`, :data:`VERL_PER_SAMPLE`, :data:`VERL_BATCH`, for
:meth:`~prometheus_reward.rewards.JudgedReward.for_engine`).

OpenRLHF sends ``queries`` (the templated prompt followed by the decoded response), ``prompts``
(the templated prompts) and ``labels`` (from ``--label_key``). A label is a reference answer, or a
JSON object ``{"reference_answer": ..., "rubric": ...}``. verl sends a ``ground_truth`` of the same
two shapes and the instruction in ``extra_info``.

Example:
    >>> split_query("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>",
    ...             "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n")
    'Hello!'
    >>> label_fields('{"reference_answer": "x", "rubric": "honesty"}')
    ('x', 'honesty')
"""

from __future__ import annotations

import json
from typing import Any, Mapping, NamedTuple, Sequence

from prometheus_reward.blame import CAUSES
from prometheus_reward.rows import prompt_text, strip_special_tokens, untemplate_prompt


def split_query(query: Any, prompt: Any) -> str | None:
    """The response part of ``query`` (prompt + response, decoded with special tokens); None
    when the query is not text."""
    if not isinstance(query, str):
        return None
    if not isinstance(prompt, str):
        prompt = ""
    if prompt and query.startswith(prompt):
        response = query[len(prompt):]
    elif prompt and prompt in query:
        response = query[query.index(prompt) + len(prompt):]
    else:
        stripped = strip_special_tokens(prompt)
        plain = strip_special_tokens(query)
        response = plain[len(stripped):] if stripped and plain.startswith(stripped) else query
    return strip_special_tokens(response)


def instruction_of(prompt: Any) -> Any:
    """The instruction the judge reads from an engine's prompt: a templated string is untemplated
    (its last user turn); chat messages are left for :func:`prometheus_reward.rows.prompt_text`."""
    if isinstance(prompt, str):
        return untemplate_prompt(prompt)
    return prompt if prompt_text(prompt) is not None else None


def label_fields(label: Any, rubric: Any = None) -> tuple[str | None, Any]:
    """(reference answer, rubric) from an OpenRLHF label or a verl ground truth; ``rubric`` is
    the default when the label names none."""
    if label is None:
        return None, rubric
    if isinstance(label, Mapping):
        return label.get("reference_answer"), label.get("rubric", rubric)
    text = str(label)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return text, rubric
        if isinstance(data, dict):
            return data.get("reference_answer"), data.get("rubric", rubric)
    return (text if text.strip() else None), rubric


class EngineRows(NamedTuple):
    """One engine batch as reward columns: the instruction cells (the prompts a reward reads), the
    responses, and per row the reference answer and rubric cells."""

    prompts: list[Any]
    responses: list[Any]
    references: list[str | None]
    rubrics: list[Any]

    def columns(self, reward: Any) -> dict[str, list[Any]]:
        """The reference and rubric cells under the column names ``reward`` reads."""
        return {reward.reference_column: self.references, reward.rubric_column: self.rubrics}


def openrlhf_rows(queries: Sequence[Any], prompts: Sequence[Any] | None, labels: Sequence[Any] | None,
                  rubric: Any = None) -> EngineRows:
    """OpenRLHF's ``(queries, prompts, labels)`` as reward rows: the instruction untemplated from the
    prompt, the response the query minus its prompt, the label read by :func:`label_fields`
    (``rubric``: the default when a label names none). Missing prompts or labels count as empty.

    Example:
        >>> openrlhf_rows(["Q: hi A: hello"], ["Q: hi A:"], ["hello"])
        EngineRows(prompts=['Q: hi A:'], responses=['hello'], references=['hello'], rubrics=[None])
    """
    n = len(queries)
    prompts = list(prompts) if prompts is not None else [""] * n
    labels = list(labels) if labels is not None else [None] * n
    rows = EngineRows([], [], [], [])
    for query, prompt, label in zip(queries, prompts, labels):
        rows.prompts.append(instruction_of(prompt))
        rows.responses.append(split_query(query, prompt))
        reference, row_rubric = label_fields(label, rubric)
        rows.references.append(reference)
        rows.rubrics.append(row_rubric)
    return rows


def ppo_rewards(reward: Any, batch: Any) -> tuple[list[float], list[str | None]]:
    """PPO cannot mask a reward: the batch's rewards with every row a float, and per row how it was
    made (:meth:`~prometheus_reward.rewards.RewardBatch.filled`): a ``response``-caused row keeps
    its floor (``"floor"``); a ``judge``/``transport``-caused row gets the user's ``fallback`` when
    set, else the mean reward of the scored rows of its prompt group in this batch, else the
    reward's neutral value (``"fill"``: no signal for its group)."""
    return batch.filled(reward.neutral_reward)


def blame_flags(batch: Any, how: Sequence[str | None]) -> dict[str, list[float]]:
    """Per row, 0.0/1.0 flags an engine logs beside the reward: ``judge_fill`` (a signal-free fill),
    ``judge_floor`` (the floor of a response the policy made unjudgeable), and
    ``unscorable_<cause>`` for each cause (their means are the per-cause shares)."""
    causes = batch.causes
    flags = {"judge_fill": [float(h == "fill") for h in how], "judge_floor": [float(h == "floor") for h in how]}
    for cause in CAUSES:
        flags[f"unscorable_{cause}"] = [float(c == cause) for c in causes]
    return flags


def judge_flags(batch: Any, how: Sequence[str | None]) -> dict[str, list[float]]:
    """:func:`blame_flags` named as verl logs them: ``judge_fill``, ``judge_floor``,
    ``judge_unscorable_<cause>``."""
    return {name if name.startswith("judge_") else f"judge_{name}": flags
            for name, flags in blame_flags(batch, how).items()}


# What each engine feeds a reward: (engine, layouts delivered, how it calls), for JudgedReward.for_engine.
OPENRLHF = ("OpenRLHF's reward_func", frozenset({"rows"}),
            "calls it with one sample at a time (as its SingleTurnAgentExecutor does)")
OPENRLHF_HTTP = ("OpenRLHF's remote reward (/get_reward)", frozenset({"rows"}),
                 "sends one sample per request (as its SingleTurnAgentExecutor does)")
VERL_PER_SAMPLE = ("verl's compute_score", frozenset({"rows"}),
                   "calls it once per response; concurrent calls are gathered into micro-batches that can split "
                   "a prompt's group (verl's BatchRewardManager with compute_score_batch sees whole groups)")
VERL_BATCH = ("verl's compute_score_batch", frozenset({"rows", "groups"}), "passes the whole batch")