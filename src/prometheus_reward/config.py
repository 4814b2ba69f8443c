"""Every option, declared once: who judges (:class:`JudgeConfig`), how (:class:`JudgingConfig`),
what the reward does with the grades (:class:`RewardConfig`) and how candidates are ranked
(:class:`RerankConfig`).

Everything else derives from these dataclasses: the command-line options
(:mod:`prometheus_reward.cli.common`), the recipes' ``TrlParser`` arguments
(:data:`prometheus_reward.rewards.RewardArguments`), the reward configs of the PPO adapters, the
server, the bench, and the ``PROMETHEUS_REWARD_*`` environment variables. A default lives in one
place, the field below; :func:`defaults_table` prints all of them.

Names in the three spellings:

- Python and YAML sections: the field name (``JudgeConfig(model=...)``, ``{"judge": {"model": ...}}``).
- flat namespaces (recipes, verl ``reward_kwargs``): judge and judging fields take a ``judge_``
  prefix (``judge_model``, ``judge_mode``, ``judge_max_new_tokens``), reward fields none
  (``rubric``, ``normalize``), because the trainers' own configs already own ``temperature``...
- environment: ``PROMETHEUS_REWARD_`` + the field name in capitals (``PROMETHEUS_REWARD_MODEL``).

Example:
    >>> JudgingConfig(mode="direct").sampling_overrides()
    {}
    >>> JudgingConfig(max_new_tokens=64).sampling_overrides()
    {'max_new_tokens': 64}
    >>> from_mapping(JudgeConfig, {"model": "embedded", "dtype": "float32"}).dtype
    'float32'
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .registry import ENGINES, REWARD_SHAPES, Registry

DEFAULT_EVALUATOR = "prometheus-eval/prometheus-7b-v2.0"
ENV_PREFIX = "PROMETHEUS_REWARD_"
MODES: tuple[str, ...] = ("generate", "expected", "direct")
CHAT_FAMILIES: tuple[str, ...] = ("prometheus-2", "prometheus-1", "auto", "raw")
RELATIVE_VARIANTS: tuple[str, ...] = ("prometheus-2", "prometheus-eval-0.1.20")
NORMALIZE_METHODS: tuple[str, ...] = ("linear", "symmetric", "centered", "zscore", "identity")
PAIRWISE_TRANSFORMS: tuple[str, ...] = ("prob", "symmetric", "logit")
PAIRWISE_ANCHORS: tuple[str, ...] = ("auto", "reference", "group", "tournament")
STRATEGIES: tuple[str, ...] = ("absolute", "pairwise")
TOURNAMENTS: tuple[str, ...] = ("round-robin", "knockout")
RANKINGS: tuple[str, ...] = ("win-rate", "bradley-terry")
BATCHING: tuple[str, ...] = ("auto", "padded", "continuous")
AUTO_ENGINE = "auto"  # openai when base_urls is set, else transformers
REMOTE_ENGINE = "openai"  # the engine that base_urls (--openai-base-url) belongs to


class ConfigError(ValueError):
    """An option with a bad name or value (the message names it)."""


def option(default: Any = None, help: str = "", *, choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
           flag: str | None = None, default_factory: Any = None, cli: bool = True, backend: bool = False) -> Any:
    """A dataclass field carrying its documentation: ``help``, allowed ``choices`` (a tuple, or a
    :class:`~prometheus_reward.registry.Registry` or a function read when the options are listed,
    so a registration made later counts), the command-line ``flag`` when it is not
    ``--field-name``, ``cli=False`` for Python-only options, and ``backend=True`` for a
    :class:`JudgeConfig` field that says how the evaluator is loaded or reached rather than how
    it judges (see :meth:`JudgeConfig.judging_rules`)."""
    if choices is not None and not isinstance(choices, Registry) and not callable(choices):
        choices = tuple(choices) or None
    metadata = {"help": help, "choices": choices, "flag": flag, "cli": cli, "backend": backend}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


class FrozenDict(dict):
    """A dict that cannot be changed after it is made (a frozen config's ``model_kwargs``);
    it pickles, compares and reads like a dict.

    Example:
        >>> kwargs = FrozenDict({"revision": "main"})
        >>> kwargs == {"revision": "main"}, dict(kwargs)
        (True, {'revision': 'main'})
        >>> kwargs["revision"] = "dev"
        Traceback (most recent call last):
        ...
        TypeError: a frozen config's mapping cannot be changed; use dataclasses.replace
    """

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a frozen config's mapping cannot be changed; use dataclasses.replace")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=repr)))


def _engine_choices() -> tuple[str, ...]:
    return (AUTO_ENGINE, *ENGINES)


@dataclass(frozen=True)
class JudgeConfig:
    """Who judges and by which rules: the engine that runs the evaluator (a registered name, see
    :data:`prometheus_reward.registry.ENGINES`), how it is loaded or reached, and the rules of
    judging. Frozen: a :class:`~prometheus_reward.judge.Judge` holds one as its only truth, so a
    judge with other rules is a new judge (:meth:`Judge.replace <prometheus_reward.judge.Judge.replace>`),
    never a change that worker processes (which rebuild from the config) would not see.

    ``engine="auto"`` (the default) is ``openai`` when ``base_urls`` is set, else
    ``transformers``; ``base_urls`` belong to the ``openai`` engine, so another engine with
    them (or ``openai`` without them) is a :class:`ConfigError`.

    Example:
        >>> config = JudgeConfig(model="embedded:tiny-random", dtype="float32")
        >>> config.engine_name, config.is_remote
        ('transformers', False)
        >>> JudgeConfig(model="m", base_urls="http://a:1, http://b:2").engine_name
        'openai'
        >>> config.min_score_mass = 0.0
        Traceback (most recent call last):
        ...
        dataclasses.FrozenInstanceError: cannot assign to field 'min_score_mass'
    """

    engine: str = option(AUTO_ENGINE, "what runs the evaluator: a registered engine (prometheus_reward.registry.ENGINES) "
                         "or auto: openai when base_urls is set, else transformers", choices=_engine_choices,
                         backend=True)
    model: str = option(DEFAULT_EVALUATOR, "evaluator: hub id, local folder, 'embedded' (Gemma-3-270M smoke model) "
                        "or 'embedded:tiny-random'; with base_urls, the served model name", backend=True)
    adapter: str | None = option(None, "a peft LoRA adapter (folder or hub id) applied on top of the model", backend=True)
    dtype: str = option("auto", "weights dtype: auto, bfloat16, float16 or float32", backend=True)
    device_map: str | None = option(None, "where the evaluator lives, e.g. auto, cuda:1, cpu (keep it off the policy's GPU)",
                                    backend=True)
    family: str | None = option(None, "chat format (default: detected from the model)", choices=CHAT_FAMILIES,
                                backend=True)
    max_batch_tokens: int | None = option(None, "token budget of one generation batch (default 16k on CPU, 64k on GPU)",
                                          backend=True)
    max_forward_tokens: int | None = option(None, "token budget of one forward-only batch (default 2k on CPU, "
                                            "max_batch_tokens on GPU)", backend=True)
    batching: str = option("auto", "how a local evaluator batches generation: continuous (transformers' continuous "
                           "batching: a finished row frees its place at once), padded (batches run until their "
                           "longest row ends), auto (per call, continuous only where bench --crossover measured it faster for that "
                           "many rows and that output length on this device and attention implementation, else padded)",
                           choices=BATCHING, backend=True)
    prefix_sharing: bool = option(True, "local evaluator, forward-only batches (direct mode, expected readings): "
                                  "compute the prompt prefix rows share (template header, instruction) once", backend=True)
    max_input_tokens: int | None = option(None, "prompt token budget (default: the context minus the new tokens)")
    max_retries: int = option(2, "re-samples of outputs without a parseable result (generate mode)")
    relative_variant: str = option("prometheus-2", "wording of the pairwise prompt", choices=RELATIVE_VARIANTS)
    min_score_mass: float = option(0.1, "a distribution with less probability than this on the answer tokens does not "
                                   "count: the row is unscorable unless a parsed verdict remains (a trained Prometheus "
                                   "puts nearly all of it there; random weights about 2e-5)")
    allow_forced: bool = option(True, "use the distribution read after an appended [RESULT] when the evaluator wrote "
                                "none (such grades say source=forced)")
    min_samples: int | None = option(None, "with samples > 1: how many samples must give the number (default: all; "
                                     "fewer is unscorable, an allowed partial one is flagged partial_samples)")
    allow_single_order: bool = option(False, "pairwise: accept a verdict from one presentation order when the other "
                                      "failed (flagged single_order); by default both orders are required")
    strip_reasoning: bool = option(True, "grade responses without their hidden reasoning (<think>...</think> and "
                                   "variants); an unterminated block is unscorable")
    neutralize_markers: bool = option(True, "rewrite [RESULT], template headers and score lines in responses so the "
                                      "evaluator cannot mistake them for its own (flagged in the grade)")
    seed: int | None = option(None, "seed of the evaluator's sampling")
    base_urls: tuple[str, ...] | None = option(None, "judge through these OpenAI-compatible servers (vLLM, SGLang, "
                                               "TGI, llama.cpp) instead of loading the model (engine openai)",
                                               flag="--openai-base-url", backend=True)
    api: str = option("completions", "HTTP API of the servers", choices=("completions", "chat"), flag="--openai-api",
                      backend=True)
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the servers' API key (never pass keys "
                              "as options)", flag="--openai-api-key-env", backend=True)
    tokenizer: str = option("auto", "tokenizer for exact chat formatting and token counts over HTTP ('auto': try "
                            "the model; 'none': estimate)", flag="--openai-tokenizer", backend=True)
    request_timeout: float = option(120.0, "seconds per HTTP request", backend=True)
    max_concurrency: int = option(64, "HTTP requests in flight", backend=True)
    max_attempts: int = option(4, "tries per HTTP request (5xx, timeouts, refused connections)", backend=True)
    model_kwargs: Mapping[str, Any] = option(help="extra keyword arguments for the backend (Python only)",
                                             default_factory=FrozenDict, cli=False, backend=True)

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__, before anyone can see the instance
        urls = self.base_urls
        if isinstance(urls, str):
            urls = [u.strip() for u in urls.split(",") if u.strip()]
        object.__setattr__(self, "base_urls", tuple(urls) if urls else None)
        if not isinstance(self.model_kwargs, FrozenDict):
            object.__setattr__(self, "model_kwargs", FrozenDict(self.model_kwargs or {}))
        check(self)
        if self.base_urls and self.engine not in (AUTO_ENGINE, REMOTE_ENGINE):
            raise ConfigError(f"engine {self.engine!r} does not use base_urls (--openai-base-url); they belong to "
                              f"engine {REMOTE_ENGINE!r} (or leave engine {AUTO_ENGINE!r})")
        if self.engine == REMOTE_ENGINE and not self.base_urls:
            raise ConfigError(f"engine {REMOTE_ENGINE!r} needs base_urls (--openai-base-url): the servers to judge through")

    @property
    def engine_name(self) -> str:
        """The registered engine that builds the backend (``auto`` resolved)."""
        if self.engine != AUTO_ENGINE:
            return self.engine
        return REMOTE_ENGINE if self.base_urls else "transformers"

    @property
    def is_remote(self) -> bool:
        """The evaluator is reached over HTTP (no local model path to check or load)."""
        return bool(self.base_urls)

    def judging_rules(self) -> dict[str, Any]:
        """The fields that decide how the evaluator judges (every field not marked
        ``backend=True``): with the backend's model id, revision and chat family they make a
        judge's cache identity (:func:`prometheus_reward.cached.judge_identity`), and they are
        what :meth:`Judge.replace <prometheus_reward.judge.Judge.replace>` may change.

        Example:
            >>> sorted(JudgeConfig().judging_rules())[:3]
            ['allow_forced', 'allow_single_order', 'max_input_tokens']
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("backend")}

    def with_rules(self, **changes: Any) -> "JudgeConfig":
        """This config with other judging rules; a field that describes the backend (or no field)
        is a TypeError, since the result must still describe the same backend.

        Example:
            >>> JudgeConfig().with_rules(min_score_mass=0.0).min_score_mass
            0.0
            >>> JudgeConfig().with_rules(dtype="float32")
            Traceback (most recent call last):
            ...
            TypeError: dtype describes how the backend is loaded, not how it judges; build another judge with Judge.from_config(dataclasses.replace(judge.config, ...))
        """
        rules = self.judging_rules()
        unknown = sorted(set(changes) - set(rules))
        if unknown and set(unknown) <= {f.name for f in dataclasses.fields(self)}:
            raise TypeError(f"{', '.join(unknown)} describe{'s' if len(unknown) == 1 else ''} how the backend is loaded, "
                            "not how it judges; build another judge with "
                            "Judge.from_config(dataclasses.replace(judge.config, ...))")
        if unknown:
            hint = ("; a judge's sampling follows its config (seed): give other settings per call "
                    "(judge.grade(..., temperature=0.0)) or in a JudgingConfig") if "sampling" in unknown else ""
            raise TypeError(f"unknown judging option(s) {', '.join(unknown)} (known: {', '.join(sorted(rules))}){hint}")
        return dataclasses.replace(self, **changes) if changes else self


@dataclass
class JudgingConfig:
    """How each judgment is made. ``None`` sampling fields keep the evaluator's recommended
    settings (:class:`~prometheus_reward.backends.base.SamplingParams`: 1024 new tokens,
    temperature 1.0, top_p 0.9, repetition penalty 1.03).

    Example:
        >>> JudgingConfig().mode
        'expected'
    """

    mode: str = option("expected", "generate: feedback + parsed [RESULT] N; expected: the same plus the score-token "
                       "distribution (a smooth score); direct: no feedback, one forward pass", choices=MODES)
    samples: int = option(1, "judgments per row, averaged (the papers use 3)")
    max_new_tokens: int | None = option(None, "feedback length cap (default 1024)")
    temperature: float | None = option(None, "evaluator sampling temperature (default 1.0; 0 = greedy)")
    top_p: float | None = option(None, "evaluator nucleus sampling (default 0.9)")
    repetition_penalty: float | None = option(None, "evaluator repetition penalty (default 1.03)")
    checklist_aggregation: str | None = option(None, "checklist rubrics: explicit (one judgment per item, RaR's "
                                               "weighted sum) or implicit (one judgment of the whole list); default: "
                                               "each checklist's own (explicit unless it says otherwise)",
                                               choices=("explicit", "implicit"))

    def __post_init__(self) -> None:
        check(self)

    def grade_options(self) -> dict[str, Any]:
        """The keyword arguments of ``judge.grade``: mode, samples, sampling overrides and, when
        set, the checklist aggregation."""
        extra = {"checklist_aggregation": self.checklist_aggregation} if self.checklist_aggregation else {}
        return {"mode": self.mode, "samples": self.samples, **extra, **self.sampling_overrides()}

    def sampling_overrides(self) -> dict[str, Any]:
        """The sampling fields that differ from the evaluator's defaults."""
        return {name: getattr(self, name) for name in SAMPLING_FIELDS if getattr(self, name) is not None}


SAMPLING_FIELDS: tuple[str, ...] = ("max_new_tokens", "temperature", "top_p", "repetition_penalty")


@dataclass
class RewardConfig:
    """What a reward function does with the judgments (TRL rewards, PPO adapters, server)."""

    rubric: str | None = option("helpfulness", "default rubric: preset name, YAML/JSON file or rubric text (a "
                                "'rubric' column overrides it per row)")
    reference_answer: str | None = option(None, "default reference answer (a 'reference_answer' column overrides it)")
    reward_type: str = option("absolute", "the reward shape: absolute (RubricReward), checklist (ChecklistReward), "
                              "pairwise (PairwiseReward), tournament (a group's Bradley-Terry ranking), or any "
                              "shape registered in prometheus_reward.registry.REWARD_SHAPES", choices=REWARD_SHAPES)
    normalize: str = option("linear", "how 1-5 scores become rewards: linear [0, 1], symmetric [-1, 1], centered, "
                            "zscore (running, per rubric) or identity", choices=NORMALIZE_METHODS)
    pairwise_transform: str = option("prob", "pairwise rewards: prob, symmetric (2p-1) or logit", choices=PAIRWISE_TRANSFORMS)
    pairwise_anchor: str = option("auto", "pairwise rewards in GRPO/RLOO: compare each completion with the reference "
                                  "(reference), a designated completion (group), the reference if any else the "
                                  "group's (auto), or rank the group by a Bradley-Terry tournament (tournament)",
                                  choices=PAIRWISE_ANCHORS)
    pairs_per_completion: int | None = option(None, "tournament: comparisons per completion (a balanced circular "
                                              "design); None: every pair of the group")
    fallback: float | None = option(None, "reward of completions unscorable for the judge's or the transport's sake "
                                    "(None: masked by TRL; PPO adapters and the server fill them with the mean of "
                                    "their prompt group's scored rows, else the neutral value); never replaces the "
                                    "floor reward of a response the policy made unjudgeable")
    timeout: float | None = option(None, "seconds one judge call may take before its batch is returned unscorable")
    name: str | None = option(None, "the reward's name in the trainer's logs")
    async_reward: bool = option(False, "use the async reward (overlaps with other async rewards; for remote judges)")
    rubric_column: str = option("rubric", "dataset column with per-row rubrics")
    reference_column: str = option("reference_answer", "dataset column with per-row reference answers")
    log_feedback: bool = option(True, "log each completion's feedback to the trainer's completions table")
    length_penalty: float = option(0.0, "group-relative length penalty for GRPO/RLOO groups (0: off): a completion "
                                   "loses this times its length's z-score among its group")
    breaker_window: int = option(8, "circuit breaker: how many recent reward calls it watches (0: off)")
    breaker_threshold: float | None = option(0.5, "circuit breaker: stop the run (JudgeOutage) when this share of "
                                             "the window's rows was unscorable for the judge's or the transport's "
                                             "sake (None: off)")

    def __post_init__(self) -> None:
        check(self)
        if self.length_penalty < 0:
            raise ConfigError(f"length_penalty must be 0 (off) or positive, got {self.length_penalty!r}")
        if self.breaker_window < 0:
            raise ConfigError(f"breaker_window must be 0 (off) or a number of calls, got {self.breaker_window!r}")
        if self.breaker_threshold is not None and not 0 < self.breaker_threshold <= 1:
            raise ConfigError(f"breaker_threshold must be in (0, 1] or None (off), got {self.breaker_threshold!r}")


@dataclass
class RerankConfig:
    """How several candidates of one prompt are ranked (best-of-n, list labeling)."""

    strategy: str = option("absolute", "absolute: grade each candidate (n calls); pairwise: compare them in both "
                           "orders", choices=STRATEGIES)
    tournament: str = option("round-robin", "pairwise: round-robin (n(n-1) calls) or knockout (2(n-1) calls)",
                             choices=TOURNAMENTS)
    ranking: str = option("win-rate", "round-robin ranking: mean win probability or a Bradley-Terry fit",
                          choices=RANKINGS)

    def __post_init__(self) -> None:
        check(self)


CONFIG_CLASSES = (JudgeConfig, JudgingConfig, RewardConfig, RerankConfig)
# Flat names (recipes, adapters): judge and judging fields carry this prefix.
_PREFIXED = (JudgeConfig, JudgingConfig)


# -- introspection ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One option as every front end sees it."""

    owner: type
    name: str
    type: Any
    default: Any
    help: str
    choices: tuple[str, ...] | None
    flag: str
    cli: bool

    @property
    def base_type(self) -> Any:
        """The type without ``None`` (``int | None`` -> ``int``); ``list`` for list and tuple options."""
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        inner = args[0] if args else self.type
        return list if typing.get_origin(inner) in (list, tuple) else inner

    @property
    def flat_name(self) -> str:
        return f"judge_{self.name}" if self.owner in _PREFIXED else self.name

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.name.upper()


def options(cls: type) -> list[Option]:
    """The options of a config class, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        choices = meta.get("choices")
        if callable(choices):
            choices = choices()
        out.append(Option(cls, f.name, hints[f.name], default, meta.get("help", ""),
                          tuple(choices) if choices is not None else None,
                          meta.get("flag") or "--" + f.name.replace("_", "-"), meta.get("cli", True)))
    return out


def check(config: Any) -> None:
    """Raise :class:`ConfigError` for a value outside an option's choices or a bad number."""
    for opt in options(type(config)):
        value = getattr(config, opt.name)
        if value is None:
            continue
        if opt.choices and value not in opt.choices:
            raise ConfigError(f"unknown {opt.name} {value!r}; choose one of {', '.join(opt.choices)}")
    positive = ("samples", "min_samples", "pairs_per_completion", "max_new_tokens", "max_batch_tokens", "max_forward_tokens", "max_input_tokens",
                "max_concurrency", "max_attempts", "timeout", "request_timeout")
    for name in positive:
        value = getattr(config, name, None)
        if value is not None and not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")
    for name in ("max_retries",):
        value = getattr(config, name, None)
        if value is not None and value < 0:
            raise ConfigError(f"{name} must be 0 or more, got {value!r}")
    mass = getattr(config, "min_score_mass", None)
    if mass is not None and not 0 <= mass <= 1:
        raise ConfigError(f"min_score_mass must be in [0, 1], got {mass!r}")
    for name in ("temperature", "repetition_penalty"):
        value = getattr(config, name, None)
        if value is not None and value < 0:
            raise ConfigError(f"{name} must be 0 or more, got {value!r}")
    top_p = getattr(config, "top_p", None)
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p!r}")


# -- building configs from other shapes ---------------------------------------------------------------------
def from_mapping(cls: type, mapping: Mapping[str, Any], where: str = "config") -> Any:
    """``cls(**mapping)`` that names unknown keys and bad values (``where`` says where they came from)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown {cls.__name__} option(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    try:
        return cls(**dict(mapping))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def from_object(cls: type, obj: Any, flat: bool = False) -> Any:
    """A config from the attributes of ``obj`` (an argparse namespace, a recipe dataclass); with
    ``flat=True`` judge and judging fields are read from their ``judge_`` names."""
    values = {}
    for opt in options(cls):
        name = opt.flat_name if flat else opt.name
        if hasattr(obj, name):
            values[opt.name] = getattr(obj, name)
    return cls(**values)


def split_flat(mapping: Mapping[str, Any], where: str = "config") -> dict[type, dict[str, Any]]:
    """Route flat keys (``judge_model``, ``judge_max_new_tokens``, ``rubric``) to their config class;
    an unknown key is an error, never silently passed on.

    Example:
        >>> parts = split_flat({"judge_model": "embedded", "judge_max_new_tokens": 8, "rubric": "honesty"})
        >>> parts[JudgeConfig], parts[JudgingConfig], parts[RewardConfig]
        ({'model': 'embedded'}, {'max_new_tokens': 8}, {'rubric': 'honesty'})
    """
    routes = {opt.flat_name: opt for cls in (JudgeConfig, JudgingConfig, RewardConfig) for opt in options(cls)}
    parts: dict[type, dict[str, Any]] = {JudgeConfig: {}, JudgingConfig: {}, RewardConfig: {}}
    unknown = []
    for key, value in mapping.items():
        opt = routes.get(key)
        if opt is None:
            unknown.append(key)
        else:
            parts[opt.owner][opt.name] = value
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))} (judge options are "
                          f"judge_<name>, e.g. judge_model, judge_mode, judge_max_new_tokens)")
    return parts


def flat_dataclass(name: str, classes: Iterable[type] = (JudgeConfig, JudgingConfig, RewardConfig),
                   overrides: Mapping[str, Any] | None = None, doc: str = "",
                   only: Iterable[str] | None = None) -> type:
    """A flat dataclass of the options of ``classes`` (flat names), e.g. the recipes'
    ``RewardArguments`` that ``trl.TrlParser`` reads; ``overrides`` change defaults; ``only``
    keeps just these flat names (e.g. the judge's chat format for a training recipe)."""
    overrides = dict(overrides or {})
    keep = None if only is None else set(only)
    fields = []
    for cls in classes:
        for opt in options(cls):
            if not opt.cli or (keep is not None and opt.flat_name not in keep):
                continue
            help_text = opt.help + (f" (choices: {', '.join(opt.choices)})" if opt.choices else "")
            default = overrides.get(opt.flat_name, opt.default)
            if isinstance(default, list):
                spec = field(default_factory=lambda d=default: list(d), metadata={"help": help_text})
            else:
                spec = field(default=default, metadata={"help": help_text})
            # a tuple option is a list on the command line (what TrlParser reads); configs make it a tuple
            kind = (list[str] | None) if opt.base_type is list else opt.type
            fields.append((opt.flat_name, kind, spec))
    if keep is not None and keep - {f[0] for f in fields}:
        raise ConfigError(f"flat_dataclass: no option(s) {', '.join(sorted(keep - {f[0] for f in fields}))}")
    made = dataclasses.make_dataclass(name, fields)
    made.__doc__ = doc or f"Flat options of {', '.join(c.__name__ for c in classes)}."
    return made


# -- environment ----------------------------------------------------------------------------------------------
def _parse_env(opt: Option, text: str) -> Any:
    base = opt.base_type
    if base is list:
        return [u.strip() for u in text.split(",") if u.strip()]
    if base is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{opt.env_name} must be true or false, got {text!r}")
    if base in (int, float):
        try:
            return base(text)
        except ValueError:
            raise ConfigError(f"{opt.env_name} must be a number, got {text!r}") from None
    return text


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The reward config the environment describes, as :func:`prometheus_reward.rewards.reward_from_config`
    reads it: ``PROMETHEUS_REWARD_CONFIG`` names a YAML/JSON file with such a mapping, and
    ``PROMETHEUS_REWARD_<OPTION>`` variables override it (judge options go to its ``judge``
    section, sampling options to ``sampling``).

    Example:
        >>> config = from_env({"PROMETHEUS_REWARD_MODEL": "embedded", "PROMETHEUS_REWARD_MODE": "direct",
        ...                    "PROMETHEUS_REWARD_MAX_NEW_TOKENS": "8"})
        >>> config["judge"], config["mode"], config["sampling"]
        ({'model': 'embedded'}, 'direct', {'max_new_tokens': 8})
    """
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    path = env.get(ENV_PREFIX + "CONFIG")
    if path:
        import yaml

        try:
            with open(path, encoding="utf-8") as handle:
                loaded = yaml.safe_load(handle) or {}
        except OSError as err:
            raise ConfigError(f"{ENV_PREFIX}CONFIG: cannot read {path}: {err.strerror}") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: the reward config must be a mapping")
        config.update(loaded)
    judge = dict(config.get("judge") or {})
    sampling = dict(config.get("sampling") or {})
    for cls in (JudgeConfig, JudgingConfig, RewardConfig):
        for opt in options(cls):
            text = env.get(opt.env_name)
            if not text or not opt.cli:
                continue
            value = _parse_env(opt, text)
            if cls is JudgeConfig:
                judge[opt.name] = value
            elif opt.name in SAMPLING_FIELDS:
                sampling[opt.name] = value
            else:
                config[opt.name] = value
    if judge:
        config["judge"] = judge
    if sampling:
        config["sampling"] = sampling
    return config


# -- documentation ------------------------------------------------------------------------------------------------
def defaults_table() -> str:
    """Every option with its default, flag, flat name and environment variable, as markdown."""
    lines = ["| option | default | command line | recipes / verl | environment | meaning |",
             "|---|---|---|---|---|---|"]
    for cls in CONFIG_CLASSES:
        for opt in options(cls):
            default = "-" if opt.default in (None, {}, []) else f"`{opt.default}`"
            flat = f"`{opt.flat_name}`" if cls is not RerankConfig and opt.cli else "-"
            env = f"`{opt.env_name}`" if cls is not RerankConfig and opt.cli else "-"
            flag = f"`{opt.flag}`" if opt.cli else "(Python)"
            choices = f" ({' / '.join(opt.choices)})" if opt.choices else ""
            lines.append(f"| {cls.__name__}.{opt.name} | {default} | {flag} | {flat} | {env} | {opt.help}{choices} |")
    return "\n".join(lines) + "\n"
