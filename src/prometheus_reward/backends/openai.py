"""Evaluator behind OpenAI-compatible HTTP servers (vLLM, SGLang, TGI, llama.cpp, ``transformers serve``).

The backend is synchronous, like every :class:`~prometheus_reward.backends.base.Backend`, but a
batch of prompts fans out as concurrent ``httpx`` requests on an event loop of its own (a daemon
thread), bounded by a semaphore. Each request has a timeout and is retried with exponential
backoff on 5xx / 408 / 429, timeouts and connection errors; with several base URLs the least
busy one is picked (least outstanding requests) and a failing one is skipped for a cool-down.
When every attempt fails the row comes back failed (a :class:`Generation` or
:class:`AnswerDistribution` with ``error`` set, naming the last failure) with a warning: nothing
raises into a training loop, and nothing is scored from a request that never succeeded.

Scores from probabilities, in one of two modes (``logprob_mode``, probed once per server at first
use, see :mod:`~prometheus_reward.backends.logprobs`): ``exact`` where the server returns the
logprobs of requested token ids (vLLM's ``logprob_token_ids``; needs the evaluator's tokenizer),
read over the full vocabulary from prompts sent as token ids; ``top-k`` elsewhere, the mass
measured over what came back. Servers that return no logprobs (``transformers serve``) fall back
to parsing: the Judge parses the text, ``read_answers`` reads the greedy answer (one-hot, no mass).

Token counting uses the evaluator's tokenizer when it can be loaded locally (``tokenizer=``);
otherwise it estimates one token per 4 characters (rough: give ``max_input_tokens`` some slack,
or a tokenizer, when prompts approach the context length).

Example:
    >>> from prometheus_reward import Judge
    >>> judge = Judge.from_openai(["http://gpu1:8000", "http://gpu2:8000"],
    ...                           "prometheus-eval/prometheus-7b-v2.0")            # doctest: +SKIP
    >>> judge.grade(["Say hi."], ["Hello!"], "helpfulness", mode="expected")[0].expected  # doctest: +SKIP
    4.12
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import httpx

from ..config import JudgeConfig
from ..templates import ChatFamily, detect_family, format_chat
from .base import AnswerDistribution, Backend, Generation, Locator, SamplingParams
from .chat_prompt import ChatPrompt
from .logprobs import (ExactReads, distribution_from_ids, distribution_from_top, exact_answer_in, exact_fields,
                       exact_steps, extract_positions, normalize_token, top_answer, top_answer_at)
from .tokens import AnswerTokens, default_context_length, encode_prompt, lead_text, truncate_text

__all__ = ["ChatPrompt", "OpenAIBackend", "distribution_from_top", "extract_positions", "normalize_token"]

logger = logging.getLogger(__name__)

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Request fields some servers reject (``transformers serve`` answers 422 to unknown fields):
# dropped for the rest of the session when a 4xx names them, then the request is resent.
_OPTIONAL_FIELDS = ("repetition_penalty", "seed", "logprobs", "top_logprobs", "continue_final_message",
                    "add_generation_prompt")
_UNKNOWN_FIELD_WORDS = ("unexpected", "unsupported", "not supported", "extra", "unknown", "not permitted",
                        "unrecognized", "unrecognised")
_CHARS_PER_TOKEN = 4


@dataclass
class _Endpoint:
    url: str
    outstanding: int = 0
    requests: int = 0
    failures: int = 0
    down_until: float = 0.0


@dataclass
class HTTPStats:
    """Request-level counters (on top of :class:`~prometheus_reward.backends.base.BackendStats`)."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    failed_requests: int = 0
    per_url: dict[str, dict[str, int]] = field(default_factory=dict)


class _LoopThread:
    """An asyncio loop on a daemon thread; sync code submits coroutines to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openai-backend-loop", daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class OpenAIBackend(Backend):
    """Evaluator served by one or more OpenAI-compatible servers.

    Args:
        base_urls: one URL or a list (``http://host:8000`` or ``http://host:8000/v1``); requests
            go to the least busy, failing ones are skipped for ``cooldown`` seconds.
        model: the served model name (what the server calls it).
        api_key: sent as ``Authorization: Bearer``.
        api: ``"completions"`` (exact prompt text; preferred) or ``"chat"`` (the server applies
            the chat template; reading the distribution after ``[RESULT]`` then needs the
            vLLM/SGLang ``continue_final_message`` extension).
        tokenizer: a tokenizer object, a path/hub id, ``"auto"`` (try ``model``) or None (no
            tokenizer: Prometheus chat rules and the chars/4 token estimate).
        family: chat format family (detected from ``model`` by default).
        context_length: the evaluator's context (default 4096 for Prometheus, else the
            tokenizer's limit, else 4096).
        timeout: seconds per HTTP request (each attempt).
        max_concurrency: requests in flight at once, over all URLs.
        max_attempts: tries per request (the first included) before the row is unscorable.
        backoff: first retry delay in seconds; it doubles each retry (with jitter) up to ``max_backoff``.
        top_logprobs: alternatives requested per position (vLLM's default cap is 20).
        send_repetition_penalty: send ``repetition_penalty`` (vLLM, SGLang, TGI accept it;
            dropped automatically when a server rejects the field).
        strip_bos: drop the tokenizer's BOS text from formatted prompts before sending, since
            servers add BOS themselves when they tokenise ``/v1/completions`` prompts.
        extra_body: extra JSON fields for every request (e.g. ``{"top_k": -1}``).
        cooldown: seconds a URL is avoided after a connection failure or timeout.
        exact_logprobs: probe each server for exact score distributions (``logprob_token_ids``)
            and use them where it answers; False: always the top logprobs.

    Attributes:
        logprob_mode: ``"exact"`` or ``"top-k"``: how score distributions are read (probed on
            first read; None while no server could be reached).
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        model: str,
        api_key: str | None = None,
        *,
        api: Literal["completions", "chat"] = "completions",
        tokenizer: Any = "auto",
        family: ChatFamily | None = None,
        context_length: int | None = None,
        revision: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_concurrency: int = 64,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        top_logprobs: int = 20,
        send_repetition_penalty: bool = True,
        strip_bos: bool = True,
        extra_body: dict[str, Any] | None = None,
        cooldown: float = 5.0,
        exact_logprobs: bool = True,
    ):
        super().__init__()
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("give at least one base URL")
        if api not in ("completions", "chat"):
            raise ValueError(f"api must be 'completions' or 'chat', got {api!r}")
        self.endpoints = [_Endpoint(self._normalize_url(u)) for u in urls]
        self.model = model
        self.model_id = model
        self.revision = revision
        self.api = api
        self.api_key = api_key
        self.tokenizer = self._load_tokenizer(tokenizer, model)
        # the format from the evaluator's own tokenizer when there is one; its name otherwise
        self.family = family or detect_family(model, self.tokenizer, self._load_config(model) if self.tokenizer else None)
        self.context_length = context_length or self._default_context_length()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_concurrency = max_concurrency
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.top_logprobs = top_logprobs
        self.strip_bos = strip_bos
        self.extra_body = dict(extra_body or {})
        self.cooldown = cooldown
        self.http_stats = HTTPStats()
        self._dropped: set[str] = set() if send_repetition_penalty else {"repetition_penalty"}
        self._lead_cache: dict[tuple[tuple[str, ...], str], str] = {}
        self.exact_logprobs = exact_logprobs
        self._exact = ExactReads(self.tokenizer, self.top_logprobs)
        self._lock = threading.Lock()
        self._loop: _LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None

    @classmethod
    def from_config(cls, config: JudgeConfig, **overrides: Any) -> "OpenAIBackend":
        """The backend a :class:`~prometheus_reward.config.JudgeConfig` describes (engine
        ``openai``): its servers and HTTP settings; the API key from the environment variable
        ``api_key_env`` names unless ``model_kwargs`` holds one; other ``model_kwargs`` are
        keywords of this class (``cooldown``, ``extra_body``...); ``overrides`` too (e.g. a
        ready ``tokenizer`` object)."""
        extra = {**dict(config.model_kwargs), **overrides}
        api_key = extra.pop("api_key", None) or os.environ.get(config.api_key_env)
        return cls(
            config.base_urls or (), config.model, api_key=api_key, api=config.api,  # type: ignore[arg-type]
            tokenizer=extra.pop("tokenizer", None if config.tokenizer == "none" else config.tokenizer), family=config.family,
            timeout=config.request_timeout, max_concurrency=config.max_concurrency,
            max_attempts=config.max_attempts, **extra,
        )

    def fingerprint(self) -> dict[str, Any]:
        """What cache keys hold of this evaluator beyond its name: the API, the logprob and prompt
        settings, the extra request fields and the tokenizer that formats prompts."""
        from .fingerprint import tokenizer_fingerprint

        return {"api": self.api, "top_logprobs": self.top_logprobs, "strip_bos": self.strip_bos,
                "extra_body": self.extra_body, "tokenizer": tokenizer_fingerprint(self.tokenizer)}

    # -- construction helpers ----------------------------------------------------------------
    @staticmethod
    def _normalize_url(url: str) -> str:
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        return url[: -len("/v1")] if url.endswith("/v1") else url

    @staticmethod
    def _load_tokenizer(tokenizer: Any, model: str) -> Any:
        if tokenizer is None or not isinstance(tokenizer, str):
            return tokenizer
        from transformers import AutoTokenizer

        from ..embedded import resolve_model_path

        source = model if tokenizer == "auto" else tokenizer
        try:
            return AutoTokenizer.from_pretrained(resolve_model_path(source))
        except Exception as err:  # no local copy and no hub: estimate instead
            if tokenizer != "auto":
                raise
            logger.info("no tokenizer for %r (%s); using chat-family rules and a chars/4 token estimate",
                        source, type(err).__name__)
            return None

    @staticmethod
    def _load_config(model: str) -> Any:
        """The served model's config when a local copy exists (its architecture decides the chat
        format), else None."""
        from transformers import AutoConfig

        from ..embedded import resolve_model_path

        try:
            return AutoConfig.from_pretrained(resolve_model_path(model))
        except Exception:  # no local copy and no hub: the tokenizer alone decides
            return None

    def _default_context_length(self) -> int:
        return default_context_length(self.family, None, self.tokenizer)

    # -- text ------------------------------------------------------------------------------------
    def format(self, system: str, user: str) -> str:
        if self.api == "chat":
            # The server applies the template; the text is what truncation counts, and the
            # prompt carries its messages to the request (see ChatPrompt).
            if self.family == "prometheus-2":
                messages = [{"role": "user", "content": f"{system}\n\n{user}"}]
            else:
                messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            return ChatPrompt(f"{system}\n\n{user}", messages)
        return format_chat(system, user, self.family, self.tokenizer)  # type: ignore[arg-type]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self.tokenizer is None:
            return [math.ceil(len(t) / _CHARS_PER_TOKEN) for t in texts]
        return [len(encode_prompt(self.tokenizer, text)) for text in texts]

    def truncate(self, text: str, max_tokens: int, keep: Literal["head", "tail"] = "head") -> str:
        max_tokens = max(max_tokens, 0)
        if self.tokenizer is None:
            limit = max_tokens * _CHARS_PER_TOKEN
            if len(text) <= limit:
                return text
            return text[:limit] if keep == "head" else text[len(text) - limit :]
        return truncate_text(self.tokenizer, text, max_tokens, keep)

    def _lead_text(self, choices: Sequence[str], lead: str) -> str:
        """The part of ``lead`` that ends on a token boundary before every choice (see
        :func:`prometheus_reward.backends.tokens.lead_text`); without a tokenizer it is ``lead``
        itself and the reader skips a whitespace-only first token."""
        key = (tuple(choices), lead)
        if key not in self._lead_cache:
            self._lead_cache[key] = lead_text(self.tokenizer, choices, lead)
        return self._lead_cache[key]

    def _wire_prompt(self, text: str) -> str:
        bos = getattr(self.tokenizer, "bos_token", None) if self.tokenizer is not None else None
        if self.strip_bos and bos and text.startswith(bos):
            return text[len(bos):]
        return text

    @staticmethod
    def _chat_messages(prompt: str) -> tuple[list[dict[str, str]], str]:
        """(messages, assistant continuation) a prompt carries; text that did not come from
        :meth:`format` (no :class:`ChatPrompt`) is sent as one user message."""
        if isinstance(prompt, ChatPrompt):
            return [dict(m) for m in prompt.messages], prompt.continuation
        return [{"role": "user", "content": str(prompt)}], ""

    # -- HTTP machinery -------------------------------------------------------------------------------
    def _run(self, coro):
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
        return self._loop.run(coro)

    def _ensure_client(self) -> httpx.AsyncClient:
        # created on the loop thread, so the client and semaphore belong to that loop
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
            self._client = httpx.AsyncClient(headers=headers, limits=limits,
                                             timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout))
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._client

    def _pick(self, avoid: set[str]) -> _Endpoint:
        """Least outstanding requests among healthy URLs, avoiding ones this request failed on."""
        now = time.monotonic()
        pool = [e for e in self.endpoints if e.url not in avoid] or list(self.endpoints)
        healthy = [e for e in pool if e.down_until <= now] or pool
        return min(healthy, key=lambda e: (e.outstanding, e.down_until, e.requests))

    def _drop_rejected_field(self, payload: dict[str, Any], body: str) -> bool:
        # only an "unknown field" refusal; e.g. "logprobs above the maximum" must not drop logprobs
        if not any(word in body.lower() for word in _UNKNOWN_FIELD_WORDS):
            return False
        for name in _OPTIONAL_FIELDS:
            if name in payload and name in body:
                if name not in self._dropped:  # concurrent requests hit the same rejection
                    logger.warning("the server rejected field %r; not sending it again", name)
                self._dropped.add(name)
                payload.pop(name, None)
                return True
        return False

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any] | str:
        """POST with retries, backoff and failover; the JSON body, or the last failure's
        description when every attempt failed."""
        client = self._ensure_client()
        assert self._semaphore is not None
        payload = {k: v for k, v in {**self.extra_body, **payload}.items() if k not in self._dropped}
        self.http_stats.requests += 1
        avoid: set[str] = set()
        last_error = ""
        attempt = 0
        while attempt < self.max_attempts:
            endpoint = self._pick(avoid)
            retry = True
            async with self._semaphore:
                endpoint.outstanding += 1
                endpoint.requests += 1
                self.http_stats.attempts += 1
                try:
                    response = await client.post(endpoint.url + path, json=payload)
                    if response.status_code == 200:
                        return response.json()
                    body = response.text[:500]
                    last_error = f"HTTP {response.status_code} from {endpoint.url}: {body}"
                    if response.status_code in (400, 422) and self._drop_rejected_field(payload, body):
                        continue  # resend at once without the field; not counted as an attempt
                    retry = response.status_code in _RETRY_STATUS
                except (httpx.TimeoutException, httpx.TransportError) as err:
                    last_error = f"{type(err).__name__} from {endpoint.url}: {err}"
                    endpoint.down_until = time.monotonic() + self.cooldown
                except ValueError as err:  # a 200 with a body that is not JSON
                    last_error = f"bad JSON from {endpoint.url}: {err}"
                finally:
                    endpoint.outstanding -= 1
            endpoint.failures += 1
            attempt += 1
            if not retry or attempt >= self.max_attempts:
                break
            if len(self.endpoints) > 1:
                avoid.add(endpoint.url)
            self.http_stats.retries += 1
            delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
        self.http_stats.failed_requests += 1
        logger.warning("request to %s failed after %d attempt(s); the row is unscorable: %s",
                       path, attempt, last_error)
        return f"request failed after {attempt} attempt(s): {last_error}"

    def _request(self, prompt: str, *, max_tokens: int, temperature: float, top_p: float | None = None,
                 seed: int | None = None, repetition_penalty: float | None = None,
                 logprobs: bool = False, answer_ids: Sequence[int] | None = None,
                 prompt_ids: Sequence[int] | None = None) -> tuple[str, dict[str, Any]]:
        """(path, payload) for one completion of ``prompt`` (formatted text, maybe continued);
        ``answer_ids``: ask for these tokens' logprobs (exact mode) instead of the top ones;
        ``prompt_ids``: send the completions prompt as these token ids instead of its text."""
        payload: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature}
        if top_p is not None and temperature > 0:
            payload["top_p"] = top_p
        if seed is not None:
            payload["seed"] = seed
        if repetition_penalty is not None and repetition_penalty != 1.0:
            payload["repetition_penalty"] = repetition_penalty
        if self.api == "chat":
            messages, continuation = self._chat_messages(prompt)
            if continuation:
                messages.append({"role": "assistant", "content": continuation})
                payload["continue_final_message"] = True
                payload["add_generation_prompt"] = False
            payload["messages"] = messages
            if logprobs and answer_ids:
                payload.update(exact_fields(answer_ids, "chat"))
            elif logprobs:
                payload["logprobs"] = True
                payload["top_logprobs"] = self.top_logprobs
            return "/v1/chat/completions", payload
        payload["prompt"] = list(prompt_ids) if prompt_ids is not None else self._wire_prompt(prompt)
        if logprobs and answer_ids:
            payload.update(exact_fields(answer_ids, "completions"))
        elif logprobs:
            payload["logprobs"] = self.top_logprobs
        return "/v1/completions", payload

    @staticmethod
    def _choice_of(response: dict[str, Any] | str) -> tuple[str, dict[str, Any]] | str:
        """(text, choice) of a response, or why there is none."""
        if isinstance(response, str):
            return response
        choices = response.get("choices") if isinstance(response, dict) else None
        if not choices:
            return "the server's response has no choices"
        choice = choices[0]
        text = choice.get("text")
        if text is None:
            text = (choice.get("message") or {}).get("content") or ""
        return text, choice

    def _gather(self, requests: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any] | str]:
        async def run_all():
            return await asyncio.gather(*(self._post(path, payload) for path, payload in requests))

        return self._run(run_all())

    # -- Backend API ----------------------------------------------------------------------------------
    def read_answers(
        self, prefixes: Sequence[str], choices: Sequence[str], lead: str = "[RESULT] "
    ) -> list[AnswerDistribution]:
        lead_text = self._lead_text(choices, lead)
        plan = self._exact_plan(choices, lead)
        answer_ids = plan[1] if plan else None
        # exact: one position, after the prefix's ids + the lead's, as local backends read it (the joined
        # text can tokenise across the seam: ": " + "[" -> " ["); top-k: two, for a bare space first
        requests = [self._request(p + lead_text, max_tokens=1 if plan else 2, temperature=0.0, logprobs=True,
                                  answer_ids=answer_ids, prompt_ids=self._exact_ids(p, plan[0]) if plan else None)
                    for p in prefixes]
        responses = self._gather(requests)
        self.stats.forward_batches += 1
        self.stats.batch_sizes.append(len(prefixes))
        out: list[AnswerDistribution] = []
        for response in responses:
            self._count_usage(response)
            parsed = self._choice_of(response)
            if isinstance(parsed, str):
                out.append(AnswerDistribution.failed(parsed, transport=True))
            elif plan:
                read = exact_steps(parsed[1])
                out.append(distribution_from_ids(read[1][0] if read and read[1] else None, plan[1], plan[2]))
            else:
                out.append(top_answer(parsed[0], parsed[1], choices, self.top_logprobs))
        return out

    def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingParams,
        *,
        choices: Sequence[str] | None = None,
        locate: Locator | None = None,
        num_samples: int = 1,
    ) -> list[list[Generation]]:
        # one request per sample (``n`` is not honoured by every server); seeds differ per sample
        plan = self._exact_plan(choices, "[RESULT] ") if choices is not None and locate is not None else None
        requests = []
        for prompt in prompts:
            for s in range(num_samples):
                requests.append(self._request(
                    prompt,
                    max_tokens=sampling.max_new_tokens,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    seed=None if sampling.seed is None else sampling.seed + s,
                    repetition_penalty=sampling.repetition_penalty,
                    logprobs=choices is not None,
                    answer_ids=plan[1] if plan else None,
                    prompt_ids=self._exact_ids(prompt) if plan else None,
                ))
        responses = self._gather(requests)
        self.stats.generate_batches += 1
        self.stats.batch_sizes.append(len(prompts))
        out: list[list[Generation]] = []
        for k in range(len(prompts)):
            gens = []
            for s in range(num_samples):
                response = responses[k * num_samples + s]
                prompt_tokens, completion_tokens = self._count_usage(response)
                parsed = self._choice_of(response)
                if isinstance(parsed, str):
                    gens.append(Generation(text="", error=parsed, transport=True))
                    continue
                text, choice = parsed
                answer = None
                if plan:
                    answer = exact_answer_in(text, choice, plan, locate, self.tokenizer)  # type: ignore[arg-type]
                elif choices is not None and locate is not None:
                    answer = top_answer_at(text, choice, choices, locate)
                gens.append(Generation(text, answer, prompt_tokens, completion_tokens))
            out.append(gens)
        return out

    # -- exact distributions: which servers honour logprob_token_ids ------------------------------------
    @property
    def logprob_mode(self) -> str | None:
        """``"exact"`` when every server returns the logprobs of requested token ids, else
        ``"top-k"``; probed on first read (one small request per server, cached per URL); None
        while a server could not be reached to tell."""
        if self.tokenizer is None or not self.exact_logprobs:
            return "top-k"  # without the tokenizer there are no answer token ids to ask for
        urls = [e.url for e in self.endpoints]
        unknown = self._exact.unknown(urls)
        if unknown:
            ids = self._exact.probe_ids()
            path, payload = self._request("Answer:", max_tokens=1, temperature=0.0, logprobs=True, answer_ids=ids)
            self._run(self._exact.probe_all(self._ensure_client, unknown, path, {**self.extra_body, **payload}, ids))
        return self._exact.mode(urls)

    def _exact_ids(self, prompt: str, lead_ids: Sequence[int] = ()) -> list[int] | None:
        """A completions prompt as local backends tokenise it (BOS rule); None for the chat API."""
        return None if self.api == "chat" else encode_prompt(self.tokenizer, prompt) + list(lead_ids)

    def _exact_plan(self, choices: Sequence[str], lead: str) -> AnswerTokens | None:
        """The answer tokens to ask for by id when reads are exact; None: read the top logprobs."""
        return self._exact.plan(choices, lead) if self.logprob_mode == "exact" else None

    def _count_usage(self, response: dict[str, Any] | str) -> tuple[int, int]:
        usage = (response.get("usage") if isinstance(response, dict) else None) or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        return prompt_tokens, completion_tokens

    def endpoint_stats(self) -> list[dict[str, Any]]:
        """Per URL: outstanding, requests and failures (for /metrics and logs)."""
        return [{"url": e.url, "outstanding": e.outstanding, "requests": e.requests, "failures": e.failures}
                for e in self.endpoints]

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                try:
                    self._loop.run(self._client.aclose())
                except Exception:  # closing is best effort
                    pass
            self._loop.stop()
        self._loop = None
        self._client = None
        self._semaphore = None
