"""The evaluator's prompts, byte-identical to ``prometheus-eval==0.1.20``, and chat formatting.

Example:
    >>> from prometheus_reward.templates import absolute_prompt
    >>> text = absolute_prompt("Say hi.", "Hello!", "helpfulness")
    >>> text.startswith("###Task Description:") and text.endswith("###Feedback: ")
    True
"""

from __future__ import annotations

from typing import Any, Literal

from .rubric import Rubric

ABS_SYSTEM_PROMPT = "You are a fair judge assistant tasked with providing clear, objective feedback based on specific criteria, ensuring each assessment reflects the absolute standards set for performance."
REL_SYSTEM_PROMPT = "You are a fair judge assistant assigned to deliver insightful feedback that compares individual performances, highlighting how each stands relative to others within the same cohort."
PROMETHEUS_1_SYSTEM_PROMPT = "You are a fair evaluator language model."

ABSOLUTE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer that gets a score of 5, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Reference Answer (Score 5):
{reference_answer}

###Score Rubrics:
{rubric}

###Feedback: """

ABSOLUTE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Score Rubrics:
{rubric}

###Feedback: """

# Relative prompts as released in the prometheus-eval 0.1.20 wheel.
RELATIVE_PROMPT_0_1_20 = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Reference Answer:
{reference_answer}

###Score Rubric:
{rubric}

###Feedback: """

RELATIVE_PROMPT_WO_REF_0_1_20 = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Score Rubric:
{rubric}

###Feedback: """

# Relative prompts of the Prometheus 2 model card (the wording on prometheus-eval's GitHub main).
# The stray "and the Reference Answer" in the no-reference variant is upstream's text, kept as is.
RELATIVE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), two responses to evaluate (denoted as Response A and Response B), a reference answer, and an evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the two responses strictly based on the given evaluation criteria, not evaluating in general.
2. Make comparisons between Response A, Response B, and the Reference Answer. Instead of examining Response A and Response B separately, go straight to the point and mention about the commonalities and differences between them.
3. After writing the feedback, indicate the better response, either "A" or "B".
4. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (Either "A" or "B")"
5. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Reference Answer:
{reference_answer}

###Score Rubric:
{rubric}

###Feedback: """

RELATIVE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), two responses to evaluate (denoted as Response A and Response B), and an evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the two responses strictly based on the given evaluation criteria, not evaluating in general.
2. Make comparisons between Response A, Response B, and the Reference Answer. Instead of examining Response A and Response B separately, go straight to the point and mention about the commonalities and differences between them.
3. After writing the feedback, indicate the better response, either "A" or "B".
4. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (Either "A" or "B")"
5. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Score Rubric:
{rubric}

###Feedback: """

RelativeVariant = Literal["prometheus-2", "prometheus-eval-0.1.20"]
RELATIVE_VARIANTS: dict[str, tuple[str, str]] = {
    # variant: (with reference, without reference)
    "prometheus-2": (RELATIVE_PROMPT, RELATIVE_PROMPT_WO_REF),
    "prometheus-eval-0.1.20": (RELATIVE_PROMPT_0_1_20, RELATIVE_PROMPT_WO_REF_0_1_20),
}
DEFAULT_RELATIVE_VARIANT: RelativeVariant = "prometheus-2"

RESULT_MARKER = "[RESULT]"


def _rubric_text(rubric: Rubric | str | dict, relative: bool) -> str:
    rubric = Rubric.coerce(rubric)
    return rubric.render_relative() if relative else rubric.render()


def absolute_prompt(
    instruction: str,
    response: str,
    rubric: Rubric | str | dict,
    reference_answer: str | None = None,
) -> str:
    """Render the absolute-grading prompt (the user turn, before chat formatting).

    ``rubric`` may be a :class:`Rubric`, a preset name, a dict, or rubric text (verbatim).
    Without a reference answer, the no-reference template is used.
    """
    template = ABSOLUTE_PROMPT_WO_REF if reference_answer is None else ABSOLUTE_PROMPT
    return template.format(
        instruction=instruction,
        response=response,
        rubric=_rubric_text(rubric, relative=False),
        reference_answer=reference_answer,
    )


def relative_prompt(
    instruction: str,
    response_a: str,
    response_b: str,
    rubric: Rubric | str | dict,
    reference_answer: str | None = None,
    variant: RelativeVariant = DEFAULT_RELATIVE_VARIANT,
) -> str:
    """Render the pairwise (A vs B) prompt.

    ``variant="prometheus-2"`` (default) is the Prometheus 2 model card's wording;
    ``variant="prometheus-eval-0.1.20"`` is the released wheel's. A :class:`Rubric` shows only
    its ``[criteria]`` line here, as prometheus-eval's relative presets do; text is verbatim.
    """
    if variant not in RELATIVE_VARIANTS:
        raise ValueError(f"unknown relative prompt variant {variant!r}; choose one of {sorted(RELATIVE_VARIANTS)}")
    with_ref, without_ref = RELATIVE_VARIANTS[variant]
    template = without_ref if reference_answer is None else with_ref
    return template.format(
        instruction=instruction,
        response_A=response_a,
        response_B=response_b,
        rubric=_rubric_text(rubric, relative=True),
        reference_answer=reference_answer,
    )


# -- chat formatting -------------------------------------------------------------------------
ChatFamily = Literal["prometheus-2", "prometheus-1", "auto", "raw"]
CHAT_FAMILIES: tuple[str, ...] = ("prometheus-2", "prometheus-1", "auto", "raw")


_MISTRAL_TYPES = ("mistral", "mixtral")
_LLAMA_TYPES = ("llama",)


def _accepts_system_role(tokenizer: Any) -> bool:
    """Whether the chat template renders a system turn (some templates raise on one)."""
    marker = "prometheus-reward-system-probe"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": marker}, {"role": "user", "content": "u"}], tokenize=False,
            add_generation_prompt=True,
        )
    except Exception:  # Mistral-Instruct and Gemma 2 templates raise on a system role
        return False
    return marker in text


def _family_from_name(name_or_path: str) -> ChatFamily:
    # only the last path component: a cache folder named after this project must not count
    name = name_or_path.rstrip("/").rsplit("/", 1)[-1].lower()
    if "prometheus" in name:
        return "prometheus-1" if "-v1" in name else "prometheus-2"
    return "auto"


def detect_family(name_or_path: str = "", tokenizer: Any = None, config: Any = None) -> ChatFamily:
    """The evaluator's chat format, decided from the model itself (its architecture and chat
    template), not from its name:

    - Mistral architecture (Prometheus 2 and judges built on Mistral-Instruct): ``prometheus-2``,
      the system prompt merged into the user turn, whatever its template does with system turns
      (this keeps the Prometheus 2 prompt byte-identical);
    - another model with a chat template: ``auto`` (its own template; a template that refuses a
      system role gets the system prompt merged into the user turn, as for Prometheus 2);
    - no chat template: Llama architecture -> ``prometheus-1`` (Llama-2 chat, the Prometheus 1
      format); otherwise ``raw``;
    - nothing to inspect (a served model without a local tokenizer): the name decides, as a last
      resort (``prometheus`` -> ``prometheus-2``, ``...-v1`` -> ``prometheus-1``, else ``auto``).

    M-Prometheus (Qwen2.5) is thereby ``auto``, and a fine-tuned Mistral judge in a folder called
    ``my-judge`` is ``prometheus-2``.

    Example:
        >>> detect_family("prometheus-eval/prometheus-7b-v2.0")   # no tokenizer or config: by name
        'prometheus-2'
    """
    model_type = str(getattr(config, "model_type", "") or "").lower()
    has_template = bool(getattr(tokenizer, "chat_template", None)) if tokenizer is not None else False
    if tokenizer is None and config is None:
        return _family_from_name(name_or_path)
    if model_type in _MISTRAL_TYPES:
        return "prometheus-2"
    if has_template:
        return "auto" if _accepts_system_role(tokenizer) else "prometheus-2"
    if model_type in _LLAMA_TYPES:
        return "prometheus-1"
    return "raw"


def format_chat(system: str, user: str, family: ChatFamily = "auto", tokenizer: Any = None) -> str:
    """Wrap one evaluator turn in the evaluator's chat format and open the assistant turn.

    - ``prometheus-2``: Mistral-Instruct has no system role, so the system prompt goes in front
      of the user turn (``system + "\\n\\n" + user``) through the tokenizer's chat template
      (``[INST] ... [/INST]`` when no tokenizer is given).
    - ``prometheus-1``: Llama-2 chat with "You are a fair evaluator language model."
    - ``auto``: the tokenizer's own chat template (system role when it has one); raw text
      ``system + "\\n\\n" + user`` when it has none.
    - ``raw``: ``system + "\\n\\n" + user`` as plain text.

    The returned text carries the BOS token only where the chat template writes it.
    """
    if family == "prometheus-1":
        return f"[INST] <<SYS>>\n{PROMETHEUS_1_SYSTEM_PROMPT}\n<</SYS>>\n\n{user} [/INST]"
    merged = f"{system}\n\n{user}"
    if family == "raw":
        return merged
    if family == "prometheus-2":
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": merged}], tokenize=False, add_generation_prompt=True
            )
        return f"[INST] {merged} [/INST]"
    if family != "auto":
        raise ValueError(f"unknown chat family {family!r}; choose one of {CHAT_FAMILIES}")
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return merged
    try:
        return tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            tokenize=False,
            add_generation_prompt=True,
        )
    except Exception:  # templates without a system role raise (Mistral, Gemma 2)
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": merged}], tokenize=False, add_generation_prompt=True
        )
