"""Fingerprints of what a local evaluator computes with, for cache keys: its weights as loaded (an
adapter merged or not included) and its tokenizer, so that two fine-tunes saved in folders of one
name, or a judge retrained in place, never share judgments.

The weights' fingerprint hashes, for every parameter tensor, its name, shape and dtype and an evenly
spaced sample of its values (its first element included): cheap anywhere (one small gather per
tensor, a few milliseconds for a 7B model on a GPU), exact (no reduction whose rounding depends on
threads or devices, so every process that loads the same weights gets the same fingerprint), and
changed by any training step that moves a tensor densely, as fine-tuning and merged LoRA adapters do.
A change confined to elements off the sample (a few rows of an embedding) is not seen. It is computed
again only after a parameter changed (torch counts in-place writes).

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(4, 2)
    >>> before = weights_fingerprint(layer)
    >>> with torch.no_grad():
    ...     _ = layer.weight.add_(1.0)
    >>> before == weights_fingerprint(layer), len(before)
    (False, 32)
"""

from __future__ import annotations

import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

SAMPLE_PER_TENSOR = 8192
_weights_memo: "weakref.WeakKeyDictionary[Any, tuple[Any, str]]" = weakref.WeakKeyDictionary()
_vocab_memo: "weakref.WeakKeyDictionary[Any, tuple[Any, str]]" = weakref.WeakKeyDictionary()


def _memo_get(memo: Any, owner: Any, version: Any) -> str | None:
    try:
        seen = memo.get(owner)
    except TypeError:  # not weak-referenceable: no memo
        return None
    return seen[1] if seen is not None and version is not None and seen[0] == version else None


def _memo_put(memo: Any, owner: Any, version: Any, value: str) -> str:
    if version is not None:
        try:
            memo[owner] = (version, value)
        except TypeError:
            pass
    return value


def _parameters_version(model: Any) -> tuple | None:
    try:
        return tuple((p.data_ptr(), p._version) for p in model.parameters())
    except (RuntimeError, AttributeError):  # inference tensors keep no version counter
        return None


def weights_fingerprint(model: Any) -> str:
    """A 32-hex-digit fingerprint of a torch module's parameters (see the module docstring)."""
    import torch

    version = _parameters_version(model)
    known = _memo_get(_weights_memo, model, version)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, param in model.named_parameters():
            digest.update(f"{name}|{tuple(param.shape)}|{param.dtype}|".encode())
            if param.device.type == "meta" or param.numel() == 0:  # offloaded: its shape is all we see
                continue
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // SAMPLE_PER_TENSOR)][:SAMPLE_PER_TENSOR]
            digest.update(sample.to(torch.float64).cpu().numpy().tobytes())
    return _memo_put(_weights_memo, model, version, digest.hexdigest()[:32])


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt", "merges.txt",
                    "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json")


def _vocabulary_digest(tokenizer: Any) -> str:
    # the files it was loaded from, when they are a local folder (fast); else its definition in memory
    folder = Path(str(getattr(tokenizer, "name_or_path", "") or ""))
    files = [folder / name for name in _TOKENIZER_FILES if folder.is_dir() and (folder / name).is_file()]
    digest = hashlib.sha256()
    if files:
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    digest.update(text.encode("utf-8"))
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """A 32-hex-digit fingerprint of a tokenizer: its vocabulary and rules (the files of the folder it
    was loaded from; else the fast tokenizer's whole definition, or its vocabulary), its size, special
    tokens and chat template as they are now; None for no tokenizer."""
    if tokenizer is None:
        return None
    size = len(tokenizer)
    vocab = _memo_get(_vocab_memo, tokenizer, size)
    if vocab is None:
        vocab = _memo_put(_vocab_memo, tokenizer, size, _vocabulary_digest(tokenizer))
    rules = {
        "class": type(tokenizer).__name__,
        "size": size,
        "vocab": vocab,
        "special": {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())},
        "chat_template": getattr(tokenizer, "chat_template", None),
        "add_bos": getattr(tokenizer, "add_bos_token", None),
    }
    text = json.dumps(rules, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_BYTES_PER_PROBE, _PROBES_PER_FILE = 4096, 64


def files_fingerprint(folder: str | Path) -> str | None:
    """A 32-hex-digit fingerprint of the weight files in a model or adapter folder, for engines that
    load the weights where Python cannot read them (vLLM): each file's name and size and 64 evenly
    spaced 4 KiB probes of its bytes. None when ``folder`` is no local folder (a hub id).

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
        >>> before = files_fingerprint(folder)
        >>> _ = (folder / "model.safetensors").write_bytes(bytes(range(255, -1, -1)) * 64)
        >>> before != files_fingerprint(folder), files_fingerprint(folder / "missing")
        (True, None)
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder)}|{size}|".encode())
        with path.open("rb") as handle:
            for probe in range(_PROBES_PER_FILE):
                handle.seek(probe * max(0, size - _BYTES_PER_PROBE) // max(1, _PROBES_PER_FILE - 1))
                digest.update(handle.read(_BYTES_PER_PROBE))
    return digest.hexdigest()[:32]

