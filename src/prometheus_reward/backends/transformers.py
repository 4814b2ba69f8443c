"""Local evaluator through ``transformers``: token-budget batching, left padding, last-position
logits, answer-token probabilities recorded during generation, OOM recovery by batch splitting.

Example:
    >>> from prometheus_reward.backends.transformers import TransformersBackend
    >>> backend = TransformersBackend.from_pretrained("embedded")          # doctest: +SKIP
    >>> backend.read_answers([backend.format("sys", "Rate it.")], ["1", "2", "3", "4", "5"])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from transformers import StoppingCriteria

from ..config import BATCHING, JudgeConfig
from ..embedded import resolve_model_path
from ..templates import ChatFamily, detect_family
from .base import AnswerDistribution, Backend, Generation, Locator, SamplingParams
from .batching_choice import choose_batching
from .continuous import RowSpec, continuous_batching_unavailable, run_continuous
from .nucleus import SAMPLERS, NucleusChoice
from .prefixes import shared_prefix_groups
from .tokens import AnswerTokens, LocalTokenizerText, answer_step, cut_at_eos, default_context_length

__all__ = ["TransformersBackend", "shared_prefix_groups"]

logger = logging.getLogger(__name__)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


class _ChoiceLogitRecorder:
    """A logits processor that keeps, at every step, the raw logits of the answer tokens and the
    log-normaliser of the full vocabulary (so the answer tokens' share of the probability is
    known, not only their renormalised distribution).

    It runs before the repetition penalty and temperature (both are appended after it), so the
    recorded distribution is the model's own."""

    def __init__(self, token_ids: torch.Tensor):
        self.token_ids = token_ids
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        raw = scores.float()
        picked = raw[:, self.token_ids.to(scores.device)]
        self.steps.append(torch.cat([picked, torch.logsumexp(raw, dim=-1, keepdim=True)], dim=-1))
        return scores


class _RowLengths(StoppingCriteria):
    """Stop each row of a padded batch at its own length (a bool per row, as EOS would)."""

    def __init__(self, limits: Sequence[int], prompt_width: int):
        self.limits = torch.tensor(limits)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return (input_ids.shape[1] - self.prompt_width) >= self.limits.to(input_ids.device)


class TransformersBackend(LocalTokenizerText, Backend):
    """Run an evaluator with ``transformers`` on CPU or GPU.

    Args:
        model: a causal LM (``AutoModelForCausalLM``), in eval mode.
        tokenizer: its tokenizer.
        model_id: the name used in logs and cache keys.
        family: chat format; detected from ``model_id`` when None.
        max_batch_tokens: token budget of one generation batch, padding and new tokens included
            (default: 16k on CPU, 64k on GPU).
        max_forward_tokens: token budget of one forward-only batch (``direct`` mode, expected
            scores). Default: ``max_batch_tokens`` on GPU; 2048 on CPU, where a forward pass is
            compute-bound already at one prompt and bigger padded batches only cost time.
        context_length: override the evaluator's context window.
        revision: model revision (defaults to a hash of the config and weights' identity).
        batching: how :meth:`generate` batches: ``continuous`` (transformers' continuous batching:
            a paged KV cache of ``max_batch_tokens`` tokens, where a finished row frees its place
            for a waiting one), ``padded`` (left-padded batches of ``max_batch_tokens`` that run
            until their longest row ends), or ``auto``: per call, continuous only where it was
            measured faster for that many rows and that output length on this device type and
            attention implementation (:mod:`~prometheus_reward.backends.batching_choice`; run
            ``prometheus-reward bench --crossover`` to measure yours), else padded (and padded
            from then on if continuous batching fails).
        sampler: how the padded path draws sampled tokens: ``nucleus`` (the continuous path's
            exact top-p sampler, :mod:`~prometheus_reward.backends.nucleus`: the same distribution,
            searched among the likeliest tokens) or ``transformers`` (``TopPLogitsWarper`` and a
            multinomial over the whole vocabulary; the bench's ablation of the sampler).
        prefix_sharing: in forward-only batches (``direct`` mode, expected-score readings), run
            the token prefix that rows share (the template header and instruction of a GRPO group)
            once and reuse its KV cache for every row; the distributions are the same.

    Attributes:
        exact_lengths: benchmarks only: {formatted prompt: n}: such prompts write exactly n new
            tokens, EOS ignored (how a benchmark gives every mode the same output lengths).
        last_batching: ``"continuous"`` or ``"padded"``: what the last :meth:`generate` ran;
            ``last_batching_reason`` says why.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str = "model",
        family: ChatFamily | None = None,
        max_batch_tokens: int | None = None,
        context_length: int | None = None,
        revision: str | None = None,
        max_forward_tokens: int | None = None,
        batching: str = "auto",
        prefix_sharing: bool = True,
        sampler: str = "nucleus",
    ):
        super().__init__()
        if batching not in BATCHING:
            raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.batching = batching
        self.sampler = sampler
        self.prefix_sharing = prefix_sharing
        self.exact_lengths: dict[str, int] | None = None
        self.last_batching: str | None = None
        self.last_batching_reason: str | None = None
        self._typical_new_tokens: float | None = None  # per row, in the last generate call that stopped at EOS
        self._continuous_failed: str | None = None
        # transformers' continuous batching drives the model from its own loop: two sessions at once
        # on one model (async rewards judged in threads) leave it changed for later forward passes
        self._continuous_lock = threading.Lock()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.family = family or detect_family(model_id, tokenizer, getattr(model, "config", None))
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.device = next(model.parameters()).device
        on_gpu = self.device.type == "cuda"
        self.max_batch_tokens = max_batch_tokens or (65536 if on_gpu else 16384)
        self.max_forward_tokens = max_forward_tokens or (self.max_batch_tokens if on_gpu else 2048)
        self.context_length = context_length or self._default_context_length()
        self.revision = revision or hashlib.sha256(
            (model.config.to_json_string() + model_id).encode()
        ).hexdigest()[:16]
        self._supports_logits_to_keep = True
        self._plans: dict[tuple[tuple[str, ...], str], AnswerTokens] = {}

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str,
        *,
        dtype: str | torch.dtype = "auto",
        device_map: str | dict | None = None,
        adapter: str | None = None,
        revision: str | None = None,
        attn_implementation: str | None = None,
        family: ChatFamily | None = None,
        max_batch_tokens: int | None = None,
        max_forward_tokens: int | None = None,
        context_length: int | None = None,
        merge_adapter: bool = True,
        batching: str = "auto",
        prefix_sharing: bool = True,
        sampler: str = "nucleus",
        **model_kwargs: Any,
    ) -> "TransformersBackend":
        """Load an evaluator from the hub, a local folder, or ``"embedded"`` (Gemma-3-270M).

        ``adapter`` is a peft LoRA adapter (hub id or folder) applied on top; it is merged into
        the weights for inference speed unless ``merge_adapter=False``.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model_path(path_or_id)
        if isinstance(dtype, str) and dtype not in ("auto",):
            dtype = getattr(torch, dtype)
        if attn_implementation is not None:
            model_kwargs["attn_implementation"] = attn_implementation
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, device_map=device_map, revision=revision, **model_kwargs
        )
        model_revision = revision
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
            if merge_adapter:
                model = model.merge_and_unload()
            model_revision = f"{revision or 'main'}+{adapter}"
        name = path_or_id if path_or_id != path else str(Path(path).name)
        return cls(
            model,
            tokenizer,
            model_id=path_or_id if not Path(path_or_id).exists() else name,
            family=family,
            max_batch_tokens=max_batch_tokens,
            max_forward_tokens=max_forward_tokens,
            context_length=context_length,
            revision=model_revision,
            batching=batching,
            prefix_sharing=prefix_sharing,
            sampler=sampler,
        )

    @classmethod
    def from_config(cls, config: JudgeConfig) -> "TransformersBackend":
        """The backend a :class:`~prometheus_reward.config.JudgeConfig` describes (engine
        ``transformers``): :meth:`from_pretrained` with its fields, ``model_kwargs`` included."""
        return cls.from_pretrained(
            config.model, dtype=config.dtype, device_map=config.device_map, adapter=config.adapter,
            family=config.family, max_batch_tokens=config.max_batch_tokens,
            max_forward_tokens=config.max_forward_tokens, batching=config.batching,
            prefix_sharing=config.prefix_sharing, **config.model_kwargs,
        )

    def _default_context_length(self) -> int:
        return default_context_length(self.family, self.model.config, self.tokenizer)

    def fingerprint(self) -> dict[str, Any]:
        """What cache keys hold of this evaluator beyond its name: the weights as loaded (adapter
        included) and the tokenizer (:mod:`prometheus_reward.backends.fingerprint`)."""
        from .fingerprint import tokenizer_fingerprint, weights_fingerprint

        return {"weights": weights_fingerprint(self.model), "tokenizer": tokenizer_fingerprint(self.tokenizer)}

    # -- text: format, encode, count_tokens, truncate and the answer plans come from LocalTokenizerText

    @staticmethod
    def _distribution(logits: torch.Tensor, groups: list[list[int]]) -> AnswerDistribution:
        """The answer distribution from the answer tokens' logits followed by the full
        vocabulary's logsumexp (one row of what ``_last_logits`` and the recorder keep)."""
        logits = logits.double()
        weights = torch.exp(logits[:-1] - logits[-1])  # each answer token's share of the whole vocabulary
        return AnswerDistribution.from_masses([float(weights[g].sum()) for g in groups])

    # -- batching --------------------------------------------------------------------------------
    def _batches(self, lengths: Sequence[int], budget: int, extra: int = 0, copies: int = 1) -> Iterator[list[int]]:
        """Index batches, longest first, each within the token ``budget`` (padding included)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batch: list[int] = []
        for index in order:
            width = lengths[batch[0]] if batch else lengths[index]
            if batch and (len(batch) + 1) * copies * (width + extra) > budget:
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch

    def _pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def _run_split_on_oom(self, fn, items: list, what: str):
        """Run ``fn(items)``; on out-of-memory, halve the batch (and the budget) and retry."""
        try:
            return fn(items)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err) or len(items) == 1:
                raise
            self.stats.oom_splits += 1
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if what == "forward":
                self.max_forward_tokens = max(256, self.max_forward_tokens // 2)
            else:
                self.max_batch_tokens = max(256, self.max_batch_tokens // 2)
            logger.warning("out of memory in a %s batch of %d; splitting it", what, len(items))
            half = len(items) // 2
            return self._run_split_on_oom(fn, items[:half], what) + self._run_split_on_oom(fn, items[half:], what)

    # -- forward: answer probabilities after a lead ------------------------------------------------
    @torch.inference_mode()
    def _last_logits(self, rows: Sequence[Sequence[int]], token_ids: torch.Tensor) -> torch.Tensor:
        input_ids, mask = self._pad(rows)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs = {"input_ids": input_ids, "attention_mask": mask, "position_ids": position_ids, "use_cache": False}
        if self._supports_logits_to_keep:
            try:
                logits = self.model(**kwargs, logits_to_keep=1).logits
            except TypeError:  # older or custom models
                self._supports_logits_to_keep = False
                logits = self.model(**kwargs).logits
        else:
            logits = self.model(**kwargs).logits
        self.stats.forward_batches += 1
        self.stats.batch_sizes.append(len(rows))
        self.stats.prompt_tokens += int(mask.sum())
        last = logits[:, -1, :].float()
        picked = last[:, token_ids.to(last.device)]
        return torch.cat([picked, torch.logsumexp(last, dim=-1, keepdim=True)], dim=-1).cpu()

    def read_answers(
        self, prefixes: Sequence[str], choices: Sequence[str], lead: str = "[RESULT] "
    ) -> list[AnswerDistribution]:
        lead_ids, all_ids, groups = self._choice_plan(tuple(choices), lead)
        token_ids = torch.tensor(all_ids, dtype=torch.long)
        rows = [self.encode(p) + lead_ids for p in prefixes]
        out: list[AnswerDistribution] = [AnswerDistribution.failed("not read")] * len(rows)

        def run(batch: list[int]) -> list[tuple[int, AnswerDistribution]]:
            logits = self._last_logits([rows[i] for i in batch], token_ids)
            return [(i, self._distribution(logits[k], groups)) for k, i in enumerate(batch)]

        alone = list(range(len(rows)))
        if self.prefix_sharing and len(rows) > 1:
            alone = []
            for shared, members in shared_prefix_groups(rows):
                if shared == 0:
                    alone.extend(members)
                    continue
                logits = self._run_split_on_oom(
                    lambda batch, shared=shared: [self._shared_last_logits(rows[batch[0]][:shared],
                                                                           [rows[i][shared:] for i in batch], token_ids)],
                    members, "forward")
                for index, row_logits in zip(members, torch.cat(logits)):
                    out[index] = self._distribution(row_logits, groups)
        for batch in self._batches([len(rows[i]) for i in alone], self.max_forward_tokens):
            for index, probs in self._run_split_on_oom(run, [alone[k] for k in batch], "forward"):
                out[index] = probs
        return out

    def _cache_argument(self) -> str:
        """The forward's name for a KV cache: ``cache`` in newer transformers, ``past_key_values`` before."""
        import inspect

        parameters = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in parameters else "past_key_values"

    @torch.inference_mode()
    def _shared_last_logits(self, prefix: Sequence[int], suffixes: Sequence[Sequence[int]], token_ids: torch.Tensor
                            ) -> torch.Tensor:
        """``_last_logits`` of ``prefix + suffix`` for every suffix, running the prefix once: its
        KV cache is copied into each batch of suffixes (right-padded, so every row's tokens keep
        their distances, which sliding-window layers depend on), within ``max_forward_tokens``."""
        import copy

        from transformers import DynamicCache

        device = self.device
        start = torch.tensor([list(prefix)], device=device)
        cache = DynamicCache(config=self.model.config)
        cache_arg = self._cache_argument()
        self.model(input_ids=start, attention_mask=torch.ones_like(start), use_cache=True, logits_to_keep=1,
                   **{cache_arg: cache})
        self.stats.forward_batches += 1
        self.stats.prompt_tokens += len(prefix)
        order = sorted(range(len(suffixes)), key=lambda i: -len(suffixes[i]))
        per_batch = max(1, self.max_forward_tokens // max(len(suffixes[order[0]]) + 1, 1))
        out = torch.empty((len(suffixes), len(token_ids) + 1))
        pad = self.tokenizer.pad_token_id
        for first in range(0, len(order), per_batch):
            batch = order[first : first + per_batch]
            width = len(suffixes[batch[0]])
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), len(prefix) + width), dtype=torch.long)
            mask[:, : len(prefix)] = 1
            for k, i in enumerate(batch):
                input_ids[k, : len(suffixes[i])] = torch.tensor(list(suffixes[i]), dtype=torch.long)
                mask[k, len(prefix) : len(prefix) + len(suffixes[i])] = 1
            lasts = torch.tensor([len(suffixes[i]) - 1 for i in batch])
            keep = torch.unique(lasts)  # sorted: one logits column per distinct last position
            shared = copy.deepcopy(cache)
            shared.batch_repeat_interleave(len(batch))
            positions = torch.arange(len(prefix), len(prefix) + width).expand(len(batch), -1)
            logits = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                position_ids=positions.to(device), use_cache=True, logits_to_keep=keep.to(device),
                                **{cache_arg: shared}).logits
            last = logits[torch.arange(len(batch), device=logits.device),
                          torch.searchsorted(keep, lasts).to(logits.device)].float()
            picked = last[:, token_ids.to(last.device)]
            out[batch] = torch.cat([picked, torch.logsumexp(last, dim=-1, keepdim=True)], dim=-1).cpu()
            self.stats.forward_batches += 1
            self.stats.batch_sizes.append(len(batch))
            self.stats.prompt_tokens += int(mask[:, len(prefix):].sum())
        return out

    # -- generation ---------------------------------------------------------------------------------
    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return [] if eos is None else sorted(set(eos if isinstance(eos, (list, tuple)) else [eos]))

    def _generation_config(self, sampling: SamplingParams, honour_eos: bool = True,
                           max_new_tokens: int | None = None, own_sampler: bool = False):
        """``model.generate``'s settings; ``own_sampler``: greedy, a :class:`NucleusChoice` picks."""
        from transformers import GenerationConfig

        config = GenerationConfig(
            max_new_tokens=max_new_tokens or sampling.max_new_tokens,
            min_new_tokens=sampling.min_new_tokens or None,
            do_sample=sampling.do_sample and not own_sampler,
            num_return_sequences=1,  # the padded path repeats each row itself (greedy generate allows no more)
            pad_token_id=self.tokenizer.pad_token_id,
            # [] and not None where EOS is ignored: generate fills a None from the model's own config
            eos_token_id=(self._eos_ids() or None) if honour_eos else [],
            repetition_penalty=1.0,  # applied after the recorder instead (see below)
        )
        if sampling.do_sample and not own_sampler:  # greedy generate warns about sampling flags it ignores
            config.temperature = sampling.temperature
            config.top_p = sampling.top_p
            config.top_k = 0  # the Prometheus recipe uses top_p alone; models' own top_k defaults are off
        return config

    def _row_limits(self, prompts: Sequence[str], sampling: SamplingParams) -> list[tuple[int, int, bool]]:
        """Per prompt: (most new tokens, fewest new tokens, whether EOS ends it)."""
        exact = self.exact_lengths or {}
        planned = [p in exact for p in prompts]
        if any(planned) and not all(planned):
            raise ValueError("exact_lengths must cover every prompt of a call or none")
        if all(planned) and prompts:
            return [(exact[p], exact[p], False) for p in prompts]
        top = sampling.max_new_tokens
        return [(top, min(sampling.min_new_tokens, top), True)] * len(prompts)

    def choose_path(self, rows: int, expected_new_tokens: float) -> tuple[str, str]:
        """``("continuous" | "padded", why)`` for a :meth:`generate` call of ``rows`` rows
        (samples counted) expected to write ``expected_new_tokens`` tokens each: the ``batching``
        option, and under ``auto`` the measured crossover
        (:func:`~prometheus_reward.backends.batching_choice.choose_batching`)."""
        if self.batching == "padded":
            return "padded", "batching='padded'"
        if self._continuous_failed:
            return "padded", self._continuous_failed
        reason = continuous_batching_unavailable(self.model)
        if reason:
            if self.batching == "continuous":
                raise RuntimeError(f"batching='continuous' but {reason}")
            return "padded", reason
        if self.batching == "continuous":
            return "continuous", "batching='continuous'"
        attention = getattr(self.model.config, "_attn_implementation", None)
        return choose_batching(self.device.type, attention, rows, expected_new_tokens)

    def _expected_new_tokens(self, limits: Sequence[tuple[int, int, bool]]) -> float:
        """Tokens a row of this call will likely write: its exact length where one is set, else
        its cap, lowered to what rows wrote on average in the last call that stopped at EOS."""
        typical = self._typical_new_tokens
        lengths = [top if not honour or typical is None else min(top, max(typical, least))
                   for top, least, honour in limits]
        return sum(lengths) / max(len(lengths), 1)

    def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingParams,
        *,
        choices: Sequence[str] | None = None,
        locate: Locator | None = None,
        num_samples: int = 1,
    ) -> list[list[Generation]]:
        rows = [self.encode(p) for p in prompts]
        plan = self._choice_plan(tuple(choices), "[RESULT] ") if choices else None
        limits = self._row_limits(prompts, sampling)
        out = None
        path, self.last_batching_reason = self.choose_path(len(rows) * num_samples, self._expected_new_tokens(limits))
        if rows and path == "continuous":
            try:
                out = self._generate_continuous(rows, limits, sampling, plan, locate, num_samples)
                self.last_batching = "continuous"
            except Exception as err:  # the padded path stays the fallback; an explicit choice fails loudly
                if self.batching == "continuous":
                    raise
                self._continuous_failed = f"continuous batching failed here: {type(err).__name__}: {err}"
                logger.warning("%s; using padded batching from now on", self._continuous_failed)
                self.last_batching_reason = self._continuous_failed
        if out is None:
            out = self._generate_padded(rows, limits, sampling, plan, locate, num_samples)
            self.last_batching = "padded"
        for gens, row in zip(out, rows):
            self.stats.prompt_tokens += len(row) * len(gens)
            self.stats.completion_tokens += sum(g.completion_tokens for g in gens)
        written = [g.completion_tokens for gens in out for g in gens]
        if written and all(honour for _, _, honour in limits):
            self._typical_new_tokens = sum(written) / len(written)
        return out

    def _generate_continuous(self, rows, limits, sampling, plan, locate, num_samples) -> list[list[Generation]]:
        eos = self._eos_ids()
        specs = [RowSpec(row, top, least, eos if honour else None)
                 for row, (top, least, honour) in zip(rows, limits) for _ in range(num_samples)]
        answer_ids = torch.tensor(plan[1], dtype=torch.long) if plan else None
        with self._continuous_lock:
            results = run_continuous(
                self.model, specs, sampling, answer_ids=answer_ids, cache_tokens=self.max_batch_tokens,
                batch_tokens=self.max_forward_tokens if self.device.type != "cuda" else None, seed=sampling.seed,
            )
        self.stats.generate_batches += 1
        self.stats.batch_sizes.append(len(specs))
        out = []
        for k, (row, (top, _, honour)) in enumerate(zip(rows, limits)):
            gens = []
            for s in range(num_samples):
                result = results[k * num_samples + s]
                gens.append(self._decode_generation(torch.tensor(result.tokens, dtype=torch.long), result.recorded.get,
                                                    plan, locate, len(row), top, honour))
            out.append(gens)
        return out

    def _generate_padded(self, rows, limits, sampling, plan, locate, num_samples) -> list[list[Generation]]:
        from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor, StoppingCriteriaList

        token_ids = torch.tensor(plan[1], dtype=torch.long) if plan else None
        honour = all(h for _, _, h in limits)
        longest = max((top for top, _, _ in limits), default=sampling.max_new_tokens)
        own_sampler = self.sampler == "nucleus" and sampling.do_sample
        config = self._generation_config(sampling, honour, longest, own_sampler)
        out: list[list[Generation]] = [[] for _ in rows]
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)

        @torch.inference_mode()
        def run(batch: list[int]) -> list[tuple[int, list[Generation]]]:
            input_ids, mask = self._pad([rows[i] for i in batch])
            # each row num_samples times in a row: generate's own expansion, which a greedy
            # generate (the NucleusChoice sampler) refuses
            input_ids, mask = input_ids.repeat_interleave(num_samples, 0), mask.repeat_interleave(num_samples, 0)
            processors = LogitsProcessorList()
            recorder = _ChoiceLogitRecorder(token_ids) if token_ids is not None else None
            if recorder is not None:
                processors.append(recorder)
            if sampling.repetition_penalty != 1.0:
                processors.append(RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty))
            if own_sampler:  # last: it draws from the penalised scores, as the continuous path's step does
                processors.append(NucleusChoice(sampling))
            stopping = StoppingCriteriaList()
            if not honour:  # per-row lengths (benchmarks): a finished row waits for the batch, as after an EOS
                stopping.append(_RowLengths([limits[i][0] for i in batch for _ in range(num_samples)],
                                            input_ids.shape[1]))
            sequences = self.model.generate(
                input_ids=input_ids, attention_mask=mask, generation_config=config, logits_processor=processors,
                stopping_criteria=stopping,
            )
            self.stats.generate_batches += 1
            self.stats.batch_sizes.append(len(batch))
            new = sequences[:, input_ids.shape[1] :].cpu()
            recorded = torch.stack(recorder.steps, dim=1).cpu() if recorder and recorder.steps else None
            results = []
            for k, index in enumerate(batch):
                gens = []
                for s in range(num_samples):
                    j = k * num_samples + s
                    reading = None if recorded is None else (lambda t, j=j: recorded[j, t] if t < recorded.shape[1] else None)
                    top, _, row_honour = limits[index]
                    gens.append(self._decode_generation(new[j], reading, plan, locate, len(rows[index]), top, row_honour))
                results.append((index, gens))
            return results

        for batch in self._batches([len(r) for r in rows], self.max_batch_tokens, extra=longest, copies=num_samples):
            for index, gens in self._run_split_on_oom(run, batch, "generate"):
                out[index] = gens
        return out

    def _decode_generation(self, ids: torch.Tensor, reading, plan, locate, prompt_len: int,
                           limit: int | None = None, honour_eos: bool = True) -> Generation:
        """A Generation from new token ids; ``reading(t)`` gives the recorded answer logits of step
        ``t`` (None where nothing was recorded)."""
        ids_list = ids.tolist()[:limit]
        if honour_eos:  # drop padding and everything after the first end-of-sequence token
            ids_list = cut_at_eos(ids_list, set(self._eos_ids()) | {self.tokenizer.eos_token_id})
        text = self.tokenizer.decode(ids_list, skip_special_tokens=True)
        answer = None
        offset = locate(text) if plan is not None and locate is not None and reading is not None else None
        if offset is not None:
            _, all_ids, groups = plan
            step = answer_step(self.tokenizer, ids_list, offset, set(all_ids))
            logits = reading(step) if step is not None else None
            if logits is not None:
                answer = self._distribution(logits, groups)
        return Generation(text=text, answer=answer, prompt_tokens=prompt_len, completion_tokens=len(ids_list))

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
