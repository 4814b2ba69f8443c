"""The Judge: rows -> prompts -> backend -> verdicts -> grades. It only orchestrates: templates,
truncation, the defences against gamed responses (:mod:`.rows`), backends, parsing and the rules
that turn outputs into numbers (:mod:`.verdicts`) live in their own modules.

Example:
    >>> from prometheus_reward import Judge
    >>> judge = Judge.from_pretrained("prometheus-eval/prometheus-7b-v2.0", dtype="bfloat16", device_map="auto")  # doctest: +SKIP
    >>> [g.score for g in judge.grade(["Say hi."], ["Hello!"], "helpfulness")]               # doctest: +SKIP
    [4]
    >>> judge.compare(["Say hi."], ["Hello!"], ["Go away."], "helpfulness")[0].winner       # doctest: +SKIP
    'A'
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Literal, Mapping, Sequence

from .backends.base import Backend, Generation, SamplingParams
from .checklist import Checklist
from .config import MODES, JudgeConfig, JudgingConfig, from_mapping
from .grades import Grade, Preference
from .guards import guard_response
from .parsing import parse_absolute_output, parse_relative_output
from .prompting import Prepared as _Prepared
from .prompting import check_rows, fit, resolve_rubrics
from .registry import ENGINES
from .rows import RowError, column
from .rubric import Rubric
from .templates import ABS_SYSTEM_PROMPT, REL_SYSTEM_PROMPT, absolute_prompt, relative_prompt
from .truncation import ABSOLUTE_CUTS, RELATIVE_CUTS
from .verdicts import Reading, Unit, direct_preference, finish_grade, finish_preference, fold_units, order_verdict

logger = logging.getLogger(__name__)

Mode = Literal["generate", "expected", "direct"]
DEFAULT_MODE: str = JudgingConfig.mode  # the one default, declared in config.py
SCORE_CHOICES = ("1", "2", "3", "4", "5")
PAIR_CHOICES = ("A", "B")


def _config_from_options(options: Mapping[str, Any], **fixed: Any) -> JudgeConfig:
    """A JudgeConfig from constructor keywords: config fields by name, the rest as model_kwargs."""
    names = {f.name for f in dataclasses.fields(JudgeConfig)} - {"model_kwargs"}
    known = {k: v for k, v in options.items() if k in names}
    extra = {**dict(options.get("model_kwargs") or {}), **{k: v for k, v in options.items() if k not in names and k != "model_kwargs"}}
    return JudgeConfig(**known, **fixed, model_kwargs=extra)


class Judge:
    """A Prometheus-style evaluator over a backend, judging by the rules of one frozen
    :class:`~prometheus_reward.config.JudgeConfig` (:attr:`config`, its only truth): its
    settings are read-only properties of that config, so a change on a live judge cannot be lost
    in worker processes that rebuild it; :meth:`replace` gives a judge with other rules on the
    same backend.

    Args:
        backend: a :class:`~prometheus_reward.backends.base.Backend`.
        config: the :class:`~prometheus_reward.config.JudgeConfig` (or its dict) that describes
            ``backend`` and rebuilds this judge in another process (the constructors set it).
            Without it the backend is hand-made: the config is built with ``model=backend.model_id``
            and cannot rebuild the judge elsewhere (:attr:`rebuild_config` is None).
        **options: judging rules over ``config``'s (:meth:`JudgeConfig.judging_rules
            <prometheus_reward.config.JudgeConfig.judging_rules>`; each field's help says what it
            does): ``max_input_tokens``, ``max_retries``, ``relative_variant``, ``seed``,
            ``min_score_mass``, ``allow_forced``, ``min_samples``, ``allow_single_order``,
            ``strip_reasoning``, ``neutralize_markers``.

    Every unscorable :class:`~prometheus_reward.grades.Grade` / :class:`~prometheus_reward.grades.Preference`
    says who is to blame (``cause``, :mod:`prometheus_reward.blame`): ``response`` when the
    guards refuse a response (unterminated reasoning), a response field is not text, or a
    response alone exceeds the prompt budget (:mod:`prometheus_reward.prompting`); ``judge`` or
    ``transport`` for what the evaluator or the request did not deliver (:mod:`prometheus_reward.verdicts`);
    None for the user's own input errors (a missing instruction or rubric).

    Example:
        >>> judge = Judge(my_backend, min_score_mass=0.0)                  # doctest: +SKIP
        >>> judge.min_score_mass, judge.config.model == my_backend.model_id  # doctest: +SKIP
        (0.0, True)
        >>> judge.replace(allow_forced=False).allow_forced                 # doctest: +SKIP
        False
    """

    def __init__(self, backend: Backend, *, config: JudgeConfig | Mapping[str, Any] | None = None, **options: Any):
        rebuildable = config is not None
        if config is None:
            config = JudgeConfig(model=backend.model_id)
        elif not isinstance(config, JudgeConfig):
            config = from_mapping(JudgeConfig, config, "judge config")
        self.backend = backend
        self._config = config.with_rules(**options)
        self._rebuildable = rebuildable

    # -- the config, and what derives from it -------------------------------------------------
    @property
    def config(self) -> JudgeConfig:
        """The frozen config this judge judges by (for a hand-made backend, one that only
        describes it: see :attr:`rebuild_config`)."""
        return self._config

    @property
    def rebuild_config(self) -> JudgeConfig | None:
        """The config that rebuilds this judge in another process; None for a judge over a
        hand-made backend (its config cannot load that backend)."""
        return self._config if self._rebuildable else None

    @property
    def sampling(self) -> SamplingParams:
        """The default generation settings: the evaluator's recommendation with the config's seed."""
        return SamplingParams(seed=self._config.seed)

    max_input_tokens = property(lambda self: self._config.max_input_tokens, doc="JudgeConfig.max_input_tokens")
    max_retries = property(lambda self: self._config.max_retries, doc="JudgeConfig.max_retries")
    relative_variant = property(lambda self: self._config.relative_variant, doc="JudgeConfig.relative_variant")
    seed = property(lambda self: self._config.seed, doc="JudgeConfig.seed")
    min_score_mass = property(lambda self: self._config.min_score_mass, doc="JudgeConfig.min_score_mass")
    allow_forced = property(lambda self: self._config.allow_forced, doc="JudgeConfig.allow_forced")
    min_samples = property(lambda self: self._config.min_samples, doc="JudgeConfig.min_samples")
    allow_single_order = property(lambda self: self._config.allow_single_order, doc="JudgeConfig.allow_single_order")
    strip_reasoning = property(lambda self: self._config.strip_reasoning, doc="JudgeConfig.strip_reasoning")
    neutralize_markers = property(lambda self: self._config.neutralize_markers, doc="JudgeConfig.neutralize_markers")

    def replace(self, **changes: Any) -> "Judge":
        """A judge on the same backend with other judging rules (``dataclasses.replace`` of the
        config); this one is unchanged. Fields that describe the backend cannot change here.

        Example:
            >>> lenient = judge.replace(min_score_mass=0.0, max_retries=0)   # doctest: +SKIP
        """
        new = Judge(self.backend, config=self._config.with_rules(**changes))
        new._rebuildable = self._rebuildable
        return new

    def __repr__(self) -> str:
        return f"Judge({self.backend.model_id!r}, backend={type(self.backend).__name__})"

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: JudgeConfig | Mapping[str, Any]) -> "Judge":
        """The judge a :class:`~prometheus_reward.config.JudgeConfig` (or its dict) describes: the
        backend comes from the engine registry (:data:`prometheus_reward.registry.ENGINES`):
        ``ENGINES.get(config.engine_name).from_config(config)``.

        Example:
            >>> judge = Judge.from_config({"model": "embedded:tiny-random", "dtype": "float32"})  # doctest: +SKIP
        """
        if not isinstance(config, JudgeConfig):
            config = from_mapping(JudgeConfig, config, "judge config")
        backend = ENGINES.get(config.engine_name).from_config(config)
        return cls.from_backend(backend, config)

    @classmethod
    def from_backend(cls, backend: Backend, config: JudgeConfig) -> "Judge":
        """A judge on a ready ``backend`` with the judging rules of ``config`` (its backend
        fields only describe ``backend``; they are recorded, not used to load anything).

        Example:
            >>> judge = Judge.from_backend(my_backend, JudgeConfig(model="my-judge", max_retries=0))  # doctest: +SKIP
        """
        return cls(backend, config=config)

    @classmethod
    def from_pretrained(cls, path_or_id: str, **options: Any) -> "Judge":
        """Load a local evaluator (hub id, folder, or ``"embedded"``), with transformers unless
        ``engine`` names another registered engine.

        ``options`` are :class:`~prometheus_reward.config.JudgeConfig` fields (``dtype``,
        ``device_map``, ``adapter``, ``seed``, ``max_batch_tokens``...); any other keyword goes to
        ``AutoModelForCausalLM.from_pretrained`` (``attn_implementation``, ``revision``...).

        Example:
            >>> judge = Judge.from_pretrained("prometheus-eval/prometheus-7b-v2.0", dtype="bfloat16")  # doctest: +SKIP
        """
        return cls.from_config(_config_from_options(options, model=path_or_id))

    @classmethod
    def from_openai(cls, base_urls: str | Sequence[str], model: str, api_key: str | None = None,
                    **options: Any) -> "Judge":
        """Judge through OpenAI-compatible server(s) (vLLM, SGLang, TGI, llama.cpp, ``transformers serve``).

        ``options`` are :class:`~prometheus_reward.config.JudgeConfig` fields (``api``,
        ``request_timeout``, ``max_concurrency``...); other keywords go to
        :class:`~prometheus_reward.backends.openai.OpenAIBackend` (``cooldown``, ``extra_body``...).
        ``api_key`` defaults to the environment variable named by ``api_key_env``.

        Example:
            >>> judge = Judge.from_openai("http://127.0.0.1:8000/v1", "prometheus-eval/prometheus-7b-v2.0")  # doctest: +SKIP
        """
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if api_key is not None:
            options = {**options, "api_key": api_key}
        return cls.from_config(_config_from_options(options, model=model, base_urls=urls))

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    # -- input handling ------------------------------------------------------------------------------
    def _budget(self, mode: str, sampling: SamplingParams) -> int:
        if self.max_input_tokens is not None:
            return self.max_input_tokens
        reserve = 8 if mode == "direct" else sampling.max_new_tokens
        return max(self.backend.context_length - reserve, 64)

    # -- absolute grading -------------------------------------------------------------------------------
    def grade(
        self,
        instructions: Sequence[str],
        responses: Sequence[str],
        rubric: Any,
        reference_answers: Sequence[str | None] | str | None = None,
        mode: Mode = DEFAULT_MODE,
        samples: int = 1,
        errors: Literal["raise", "return"] = "raise",
        checklist_aggregation: str | None = None,
        **sampling: Any,
    ) -> list[Grade]:
        """Grade each response 1-5 against the rubric.

        Args:
            instructions: the prompts the responses answer.
            responses: the responses to grade (an empty string is graded like any other).
            rubric: one rubric for all rows, or one per row (Rubric, dict, preset name, text), or a
                :class:`~prometheus_reward.checklist.Checklist`: one judgment per item (explicit
                aggregation, all items of all rows in one batch; the grade's ``expected`` is
                ``1 + 4 * agg`` with RaR's weighted sum ``agg``, its ``items`` each item's result) or
                one judgment against the whole list (implicit).
            reference_answers: None, one reference for all rows, or one per row (None allowed).
            mode: ``generate`` (feedback + ``[RESULT] N``, the Prometheus protocol),
                ``expected`` (the same, plus the score-token distribution at the result),
                ``direct`` (no feedback: one forward pass over prompt + ``[RESULT] ``; much
                faster, but skips the reasoning the evaluator was trained to write first).
            samples: judgments per row, averaged (the papers use 3).
            errors: ``raise`` a ValueError naming the row and field on bad input, or
                ``return`` an unscorable Grade with ``error`` set for that row.
            checklist_aggregation: ``explicit`` or ``implicit`` for every checklist (default: each
                checklist's own).
            **sampling: overrides of the judge's sampling: ``max_new_tokens``, ``temperature``, ``top_p``,
                ``repetition_penalty``, ``seed``.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if samples < 1:
            raise ValueError("samples must be at least 1")
        params = self.sampling.replace(**sampling)
        prepared, units = self._prepare_absolute(instructions, responses, rubric, reference_answers, mode, params,
                                                 errors, checklist_aggregation)
        return fold_units(self._grade_prepared(prepared, mode, samples, params), units)

    def absolute_prompts(
        self,
        instructions: Sequence[str],
        responses: Sequence[str],
        rubric: Any,
        reference_answers: Sequence[str | None] | str | None = None,
        mode: Mode = DEFAULT_MODE,
        **sampling: Any,
    ) -> list[tuple[str | None, bool]]:
        """The chat-formatted prompts :meth:`grade` would send, with their ``truncated`` flags
        (prompt None where the row is unscorable): one per judgment, so an explicit checklist row
        has one per item. Handy to check what the evaluator sees."""
        params = self.sampling.replace(**sampling)
        prepared, _ = self._prepare_absolute(instructions, responses, rubric, reference_answers, mode, params, "raise")
        return [(p.prompt, p.truncated) for p in prepared]

    def _prepare_absolute(self, instructions, responses, rubric, reference_answers, mode, sampling, errors,
                          checklist_aggregation: str | None = None) -> tuple[list[_Prepared], list[Unit]]:
        """The prompts of every judgment (checklist rows expanded into one per item) and, per
        judgment, which row and checklist item it belongs to."""
        instructions, responses = list(instructions), list(responses)
        n = len(instructions)
        if len(responses) != n:
            raise RowError(f"{len(instructions)} instructions but {len(responses)} responses")
        references = column(reference_answers, n, "reference_answers")
        problems = check_rows({"instruction": instructions, "response": responses, "reference_answer": references},
                              optional={"reference_answer"}, errors=errors)
        rubrics, rubric_problems = resolve_rubrics(rubric, n, errors)
        budget = self._budget(mode, sampling)
        prepared: list[_Prepared] = []
        units: list[Unit] = []
        for row in range(n):
            problem = problems[row] or rubric_problems[row]
            guarded = None if problem else self._guard(responses[row], row, "response")
            if problem is None and guarded.error:  # the guards refuse the response: the policy's doing
                problem = _Prepared(None, error=guarded.error, flags=guarded.flags, cause="response")
            if problem:
                prepared.append(problem)
                units.append(Unit(row))
                if errors == "raise":
                    raise RowError(problem.error)
                continue
            criteria = rubrics[row]
            if isinstance(criteria, Checklist):
                criteria = criteria.with_aggregation(checklist_aggregation)
            if isinstance(criteria, Checklist) and criteria.aggregation == "explicit":
                judged = [(Unit(row, criteria, k), item.rubric) for k, item in enumerate(criteria.items)]
            elif isinstance(criteria, Checklist):
                judged = [(Unit(row), criteria.implicit_rubric())]
            else:
                judged = [(Unit(row), criteria)]
            for unit, rub in judged:
                prep = fit(
                    self.backend,
                    ABS_SYSTEM_PROMPT,
                    lambda f, rub=rub: absolute_prompt(f["instruction"], f["response"], rub, f["reference_answer"]),
                    {"instruction": instructions[row], "response": guarded.text, "reference_answer": references[row]},
                    ABSOLUTE_CUTS,
                    budget,
                )
                prep.flags = guarded.flags + prep.flags
                prepared.append(prep)
                units.append(unit)
        return prepared, units

    def _guard(self, text: str, row: int, field: str):
        """The response as the evaluator reads it (reasoning stripped, markers neutralised)."""
        guarded = guard_response(text, strip=self.strip_reasoning, neutralize=self.neutralize_markers)
        if guarded.error:
            return type(guarded)(guarded.text, guarded.flags, f"row {row}: field '{field}': {guarded.error}")
        return guarded

    def _grade_prepared(
        self, prepared: list[_Prepared], mode: str, samples: int, sampling: SamplingParams
    ) -> list[Grade]:
        grades = [Grade(truncated=p.truncated, error=p.error, flags=list(p.flags), cause=p.cause) for p in prepared]
        live = [i for i, p in enumerate(prepared) if p.prompt is not None]
        if not live:
            return grades
        prompts = [prepared[i].prompt for i in live]
        readings = self._readings(prompts, mode, samples, sampling, SCORE_CHOICES, parse_absolute_output)
        for k, i in enumerate(live):
            finish_grade(grades[i], readings[k], mode=mode, min_score_mass=self.min_score_mass,
                         allow_forced=self.allow_forced, min_samples=self.min_samples)
        self._mark_logprobs(grades, [g.probs is not None for g in grades])
        return grades

    def _mark_logprobs(self, judgments: Sequence[Any], read: Sequence[bool]) -> None:
        """Record how a server's distributions were read (``exact`` or ``top-k``; HTTP engines only)
        on the judgments that used one."""
        if not any(read) or not hasattr(type(self.backend), "logprob_mode"):
            return
        how = self.backend.logprob_mode  # type: ignore[attr-defined]
        for judgment, used in zip(judgments, read):
            if used:
                judgment.logprobs = how

    def _readings(self, prompts: list[str], mode: str, samples: int, sampling: SamplingParams,
                  choices: Sequence[str], parse) -> list[list[Reading]]:
        """Per prompt, one :class:`~prometheus_reward.verdicts.Reading` per sample.

        ``direct``: the distribution after ``prompt + "[RESULT] "``. ``generate``: the parsed
        outputs (re-sampled up to ``max_retries`` when unparseable). ``expected``: the parsed
        outputs plus the distribution at the result: recorded during generation where the
        backend can; else read where the evaluator wrote its verdict (``prompt + text`` up to the
        marker, then the marker it wrote as the lead); and where it wrote none, read after an
        appended ``[RESULT]`` instead of sampling again: a *forced* reading."""
        if mode == "direct":
            return [[Reading(None, "", answer)] for answer in self.backend.read_answers(prompts, choices)]
        outputs = self._sample(prompts, samples, sampling, choices if mode == "expected" else None, parse)
        parses = [[None if g.error else parse(g.text) for g in gens] for gens in outputs]
        readings = [[Reading(None if p is None else p.result, "" if p is None else p.feedback, g.answer, False, g.error,
                             g.transport, None if p is None else p.invalid)
                     for g, p in zip(gens, ps)] for gens, ps in zip(outputs, parses)]
        if mode != "expected":
            return readings
        pending: dict[str, list[tuple[int, int, str]]] = {}  # lead -> (prompt, sample, prefix)
        for k, gens in enumerate(outputs):
            for s, gen in enumerate(gens):
                if gen.error or gen.answer is not None:
                    continue
                parsed = parses[k][s]
                if parsed.result is not None and parsed.marker_start is not None:
                    lead = gen.text[parsed.marker_start:parsed.value_start]
                    prefix = prompts[k] + gen.text[:parsed.marker_start]
                else:
                    lead, prefix = "[RESULT] ", prompts[k] + gen.text.rstrip() + " "
                    readings[k][s].forced = True
                pending.setdefault(lead, []).append((k, s, prefix))
        for lead, todo in pending.items():
            answers = self.backend.read_answers([prefix for _, _, prefix in todo], choices, lead=lead)
            for (k, s, _), answer in zip(todo, answers):
                readings[k][s].answer = answer
        return readings

    def _sample(self, prompts: list[str], samples: int, sampling: SamplingParams, choices: Sequence[str] | None,
                parse) -> list[list[Generation]]:
        """Sample, then (without ``choices``: generate mode) re-sample outputs without a parseable
        result (failed requests included) up to ``max_retries`` times."""

        def locate(text: str) -> int | None:
            return parse(text).value_start

        outputs = self.backend.generate(prompts, sampling, choices=choices, locate=locate, num_samples=samples)
        if choices is not None:  # expected mode reads the distribution instead of resampling
            return outputs
        for attempt in range(self.max_retries):
            todo = [(k, s) for k, gens in enumerate(outputs) for s, g in enumerate(gens)
                    if g.error or parse(g.text).result is None]
            if not todo:
                break
            retry_sampling = sampling if sampling.seed is None else sampling.replace(seed=sampling.seed + attempt + 1)
            again = self.backend.generate([prompts[k] for k, _ in todo], retry_sampling, num_samples=1)
            for (k, s), gens in zip(todo, again):
                if not gens[0].error and parse(gens[0].text).result is not None:
                    outputs[k][s] = gens[0]
        return outputs

    def grade_rendered(
        self,
        prompts: Sequence[str],
        mode: Mode = DEFAULT_MODE,
        samples: int = 1,
        system: str = ABS_SYSTEM_PROMPT,
        **sampling: Any,
    ) -> list[Grade]:
        """Grade already rendered absolute prompts (user turns ending in ``###Feedback: ``), e.g.
        the benchmark files of the Prometheus papers, run as they are. They are chat-formatted
        with ``system`` but never cut: a prompt over the budget comes back unscorable."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        params = self.sampling.replace(**sampling)
        budget = self._budget(mode, params)
        prepared = []
        for row, prompt in enumerate(prompts):
            if not isinstance(prompt, str):  # the user's input: no one else to blame
                prepared.append(_Prepared(None, False, f"row {row}: field 'prompt' must be a string"))
                continue
            text = self.backend.format(system, prompt)
            tokens = self.backend.count_tokens([text])[0]
            if tokens > budget:  # a given prompt the evaluator's context cannot hold
                prepared.append(_Prepared(None, True, f"row {row}: prompt has {tokens} tokens, over the budget of {budget}",
                                          cause="judge"))
            else:
                prepared.append(_Prepared(text))
        return self._grade_prepared(prepared, mode, samples, params)

    async def agrade(self, *args: Any, **kwargs: Any) -> list[Grade]:
        """:meth:`grade` without blocking the event loop (runs in a worker thread)."""
        return await asyncio.to_thread(self.grade, *args, **kwargs)

    async def acompare(self, *args: Any, **kwargs: Any) -> list[Preference]:
        """:meth:`compare` without blocking the event loop (runs in a worker thread)."""
        return await asyncio.to_thread(self.compare, *args, **kwargs)

    # -- pairwise ------------------------------------------------------------------------------------------
    def compare(
        self,
        instructions: Sequence[str],
        responses_a: Sequence[str],
        responses_b: Sequence[str],
        rubric: Any,
        reference_answers: Sequence[str | None] | str | None = None,
        mode: Mode = DEFAULT_MODE,
        samples: int = 1,
        swap: bool = True,
        errors: Literal["raise", "return"] = "raise",
        **sampling: Any,
    ) -> list[Preference]:
        """Which response is better, A or B? Judged in both orders (``swap=True``) and averaged.

        ``prob_a`` is p(A better) averaged over the orders; ``consistent`` says both orders
        agreed; ``winner`` is None when they disagree and the probabilities tie.
        Modes and arguments as in :meth:`grade`.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        instructions, responses_a, responses_b = list(instructions), list(responses_a), list(responses_b)
        n = len(instructions)
        if not len(responses_a) == len(responses_b) == n:
            raise RowError(f"{n} instructions, {len(responses_a)} responses_a, {len(responses_b)} responses_b")
        references = column(reference_answers, n, "reference_answers")
        params = self.sampling.replace(**sampling)
        problems = check_rows(
            {"instruction": instructions, "response_a": responses_a, "response_b": responses_b, "reference_answer": references},
            optional={"reference_answer"}, errors=errors)
        rubrics, rubric_problems = resolve_rubrics(rubric, n, errors)
        budget = self._budget(mode, params)
        variant = self.relative_variant

        def user(f: dict, rub: Rubric, swapped: bool) -> str:
            a, b = (f["response_b"], f["response_a"]) if swapped else (f["response_a"], f["response_b"])
            return relative_prompt(f["instruction"], a, b, rub, f["reference_answer"], variant=variant)

        first: list[_Prepared] = []
        second: list[_Prepared] = []
        for row in range(n):
            problem = problems[row] or rubric_problems[row]
            guarded_a = None if problem else self._guard(responses_a[row], row, "response_a")
            guarded_b = None if problem else self._guard(responses_b[row], row, "response_b")
            refused = [(side, g) for side, g in (("A", guarded_a), ("B", guarded_b)) if g is not None and g.error]
            if problem is None and refused:  # the guards refuse a response: the policy's doing
                problem = _Prepared(None, error=refused[0][1].error, cause="response",
                                    flags=tuple(f"{side}:{f}" for side, g in refused for f in g.flags))
            if problem:
                first.append(problem)
                second.append(problem)
                if errors == "raise":
                    raise RowError(problem.error)
                continue
            rub = rubrics[row]
            if isinstance(rub, Checklist):  # a pairwise judgment weighs the whole list at once
                rub = rub.implicit_rubric()
            prep = fit(
                self.backend,
                REL_SYSTEM_PROMPT,
                lambda f, rub=rub: user(f, rub, False),
                {
                    "instruction": instructions[row],
                    "response_a": guarded_a.text,
                    "response_b": guarded_b.text,
                    "reference_answer": references[row],
                },
                RELATIVE_CUTS,
                budget,
                side=lambda name: f"{name[-1].upper()}:",
            )
            prep.flags = (tuple(f"A:{f}" for f in guarded_a.flags) + tuple(f"B:{f}" for f in guarded_b.flags)
                          + prep.flags)
            first.append(prep)
            if swap and prep.prompt is not None:
                # the swapped prompt reuses the same (possibly truncated) fields
                second.append(_Prepared(self.backend.format(REL_SYSTEM_PROMPT, user(prep.fields, rub, True)), prep.truncated))
            else:
                second.append(_Prepared(None, prep.truncated, prep.error))
        judged = [row for row in range(n) if first[row].prompt is not None]
        orders = [first] + ([second] if swap else [])
        verdicts = []  # per order, per judged row
        for prepared in orders:
            live = [row for row in judged if prepared[row].prompt is not None]
            readings = dict(zip(live, self._readings([prepared[row].prompt for row in live], mode, samples, params,
                                                     PAIR_CHOICES, parse_relative_output))) if live else {}
            verdicts.append(readings)
        results = []
        for row in range(n):
            if first[row].prompt is None:
                results.append(Preference(truncated=first[row].truncated, error=first[row].error,
                                          flags=list(first[row].flags), cause=first[row].cause))
                continue
            per_order = [v.get(row, [Reading(None, "", None, False, "not judged")]) for v in verdicts]
            if mode == "direct":
                pref = direct_preference(per_order[0][0].answer, per_order[1][0].answer if swap else None,
                                         swap, first[row].truncated, self.min_score_mass, self.allow_single_order)
            else:
                ordered = [order_verdict(r, min_score_mass=self.min_score_mass, allow_forced=self.allow_forced,
                                         min_samples=self.min_samples) for r in per_order]
                pref = finish_preference(ordered[0], ordered[1] if swap else None, first[row].truncated,
                                         self.allow_single_order)
            pref.flags = list(first[row].flags) + pref.flags  # the guards' flags, then the verdict's
            results.append(pref)
        self._mark_logprobs(results, [p.source in ("forced", "direct") or (p.prob_a is not None and p.answer_mass is not None)
                                      for p in results])
        return results

