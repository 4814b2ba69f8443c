"""Continuous batching for the local backend, through transformers' own API
(``model.init_continuous_batching``: a paged KV cache and a scheduler that admits a waiting row
as soon as a finished one frees its pages, instead of holding a padded batch until its longest
row ends).

What the judge needs on top of transformers' loop is one logits step of its own
(:class:`JudgeLogits`, plugged in as the manager's logits-processor list): the Prometheus
sampling (repetition penalty over the row's own prompt and output, temperature, top-p, top-k off:
the same settings and order as the padded path's ``model.generate``), EOS suppressed below a
row's minimum length, and the answer-token distribution recorded at every step where the sampled
token is an answer token (the only steps the judge can locate a verdict at), so ``expected`` mode
needs no second pass. transformers' own CB processors cannot do this: its repetition penalty
sees only the last token of each row, and its sampler draws over the whole vocabulary.

The step runs on the loop's thread between scheduling and sampling, so the manager is built with
async batching and CUDA graphs off (both would run the step ahead of the rows' state, or replay a
captured graph without it). Requests are queued before the loop starts, so the schedule, and so
a seeded run, is deterministic.

Example:
    >>> rows = [RowSpec([2, 651, 6037], max_new=8)]                  # doctest: +SKIP
    >>> out = run_continuous(model, rows, SamplingParams(temperature=0))  # doctest: +SKIP
    >>> out[0].tokens[:3]                                             # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .base import SamplingParams
from .nucleus import choose_next

logger = logging.getLogger(__name__)

PAGE_SIZE = 256


def continuous_batching_unavailable(model: Any) -> str | None:
    """Why this model cannot use transformers' continuous batching (None when it can)."""
    try:  # the two pieces run_continuous drives
        getattr(importlib.import_module("transformers.generation.configuration_utils"), "ContinuousBatchingConfig")
        importlib.import_module("transformers.generation.continuous_batching.cb_logits_processors")
    except (ImportError, AttributeError) as err:
        return f"this transformers has no continuous batching ({err})"
    if not callable(getattr(model, "init_continuous_batching", None)):
        return f"{type(model).__name__} has no init_continuous_batching"
    if getattr(model.config, "is_encoder_decoder", False):
        return "encoder-decoder models are not supported"
    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation not in (None, "eager", "sdpa", "paged|eager", "paged|sdpa") and "flash" not in str(implementation):
        return f"attention implementation {implementation!r} is not supported by continuous batching"
    return None


@dataclass
class RowSpec:
    """One request: prompt ids, how many new tokens at most and at least, and the EOS ids that
    end it (None: EOS is ignored, the row writes exactly ``max_new`` tokens)."""

    ids: list[int]
    max_new: int
    min_new: int = 0
    eos: list[int] | None = None


@dataclass
class RowOutput:
    """A finished request: its new token ids (EOS included when it ended the row) and, per step
    whose token is an answer token, the answer tokens' raw logits followed by the vocabulary's
    logsumexp (the layout of the padded path's recorder)."""

    tokens: list[int]
    recorded: dict[int, torch.Tensor] = field(default_factory=dict)


def _generated_count(state: Any) -> int:
    # after a soft reset (pages reclaimed), earlier output moved into the prompt
    true_initial = getattr(state, "_true_initial_tokens", 0)
    moved = len(state.initial_tokens) - true_initial if true_initial else 0
    return moved + len(state.generated_tokens)


def _judge_logits_class():
    from transformers import LogitsProcessorList
    from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessorList

    class JudgeLogits(ContinuousBatchingLogitsProcessorList):
        """The judge's logits step (see the module): it picks each row's next token itself and
        returns scores whose argmax is that token (the manager runs with ``do_sample=False``, so
        its own full-vocabulary softmax and multinomial never run)."""

        def __init__(self, specs: dict[str, RowSpec], sampling: SamplingParams, answer_ids: torch.Tensor | None,
                     generator: torch.Generator | None, candidates: int):
            super().__init__(LogitsProcessorList())
            self.do_processing = True
            self.specs = specs
            self.sampling = sampling
            self.answer_ids = answer_ids
            self.generator = generator
            self.candidates = candidates
            self.states: list[Any] = []
            self.recorded: dict[str, dict[int, torch.Tensor]] = {rid: {} for rid in specs}
            self.steps = 0

        def prepare_tensor_args(self, requests_in_batch, arg_storage):
            # the rows of the coming logits, in order: the requests that get a new token
            self.states = [future.state for future in requests_in_batch if future.has_new_token]
            return arg_storage

        def __call__(self, input_ids, scores, logits_processor_args):
            states = self.states
            if len(states) > scores.shape[0]:
                raise RuntimeError(f"{scores.shape[0]} logits rows for {len(states)} requests")
            if not states:
                return scores
            # rows past the requests that get a token are filler (a mid-prefill request's slot):
            # transformers ignores what is sampled there
            full, scores = scores, scores[: len(states)]
            self.steps += 1
            counts = [_generated_count(s) for s in states]
            specs = [self.specs[s.request_id] for s in states]
            for row, (spec, count) in enumerate(zip(specs, counts)):
                if spec.eos and count < spec.min_new:
                    scores[row, spec.eos] = -math.inf
            raw = scores  # the model's own distribution (after EOS suppression, as in generate)
            penalty = self.sampling.repetition_penalty
            if penalty != 1.0:
                histories = [list(s.initial_tokens) + list(s.generated_tokens) for s in states]
                width = max(len(h) for h in histories)
                # pad with each row's own first token: penalising it again changes nothing
                history = torch.tensor([h + [h[0]] * (width - len(h)) for h in histories], device=scores.device)
                picked = raw.gather(1, history)
                scores = raw.scatter(1, history, torch.where(picked < 0, picked * penalty, picked / penalty))
            chosen = choose_next(scores, self.sampling, self.generator, self.candidates)
            if self.answer_ids is not None:
                ids = self.answer_ids.to(scores.device)
                for row in torch.isin(chosen, ids).nonzero().flatten().tolist():
                    reading = torch.cat([raw[row, ids].float(), torch.logsumexp(raw[row].float(), -1, keepdim=True)])
                    self.recorded[states[row].request_id][counts[row]] = reading.cpu()
            full[: len(states)] = scores  # penalised scores (a no-op copy when there is no penalty)
            full[torch.arange(len(states), device=full.device), chosen.to(full.device)] = math.inf
            return full

    return JudgeLogits


def run_continuous(
    model: Any,
    rows: Sequence[RowSpec],
    sampling: SamplingParams,
    *,
    answer_ids: torch.Tensor | None = None,
    cache_tokens: int = 16384,
    batch_tokens: int | None = None,
    seed: int | None = None,
    candidates: int = 1024,
    timeout: float | None = None,
) -> list[RowOutput]:
    """Generate every row through one continuous-batching session; outputs in input order.

    ``cache_tokens`` sizes the paged KV cache (rows are admitted while it has room, so it plays
    the padded path's batch token budget); ``batch_tokens`` caps the tokens of one forward pass
    (prefill chunks; None: transformers' default). Raises RuntimeError when a request fails.
    """
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    if not rows:
        return []
    ids = [f"row{k}" for k in range(len(rows))]
    specs = dict(zip(ids, rows))
    longest = max(len(r.ids) + r.max_new for r in rows)
    # room for the budget plus one partly filled page per row, and always for the longest row
    num_blocks = max(math.ceil(cache_tokens / PAGE_SIZE) + len(rows), math.ceil(longest / PAGE_SIZE) + 2)
    cb_config = ContinuousBatchingConfig(
        page_size=PAGE_SIZE, num_blocks=num_blocks, max_batch_tokens=batch_tokens, use_cuda_graph=False,
        use_async_batching=False, seed=seed, max_requests_per_batch=len(rows),
    )
    eos = sorted({t for r in rows for t in (r.eos or [])})
    generation_config = GenerationConfig(
        do_sample=False, max_new_tokens=max(r.max_new for r in rows), eos_token_id=eos or -1,
        pad_token_id=getattr(model.generation_config, "pad_token_id", None),
    )
    generator = None
    if sampling.do_sample:
        generator = torch.Generator(device=model.device)
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()
    logits_step = _judge_logits_class()(specs, sampling, answer_ids, generator, candidates)
    manager = model.init_continuous_batching(generation_config=generation_config, continuous_batching_config=cb_config)
    manager.logit_processor = logits_step
    results: dict[str, Any] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    with torch.inference_mode():
        try:
            # queued before the loop starts: the first schedule sees every row (deterministic)
            for rid in sorted(ids, key=lambda r: specs[r].ids, reverse=True):
                spec = specs[rid]
                manager.add_request(input_ids=spec.ids, request_id=rid, max_new_tokens=spec.max_new,
                                    eos_token_id=spec.eos if spec.eos else -1)
            manager.start()
            while len(results) < len(ids):
                result = manager.get_result(timeout=0.5)
                if result is None:
                    if not manager.is_running():
                        error = manager.background_thread_status.fatal_error
                        raise RuntimeError(f"the continuous batching loop stopped: {error!r}")
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"continuous batching did not finish in {timeout} s")
                    continue
                if result.is_finished():
                    if result.error:
                        raise RuntimeError(f"continuous batching request {result.request_id} failed: {result.error}")
                    results[result.request_id] = result
        finally:
            manager.stop(block=True)
            manager.destroy()
    return [RowOutput(list(results[rid].generated_tokens), logits_step.recorded[rid]) for rid in ids]
