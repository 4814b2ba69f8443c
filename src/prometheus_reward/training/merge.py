"""Merge LoRA adapters of one base model into one adapter (or into the base weights), through
peft's ``add_weighted_adapter``: the Prometheus 2 recipe trains an absolute-grading and a
relative-grading evaluator separately, then merges them.

Methods are peft's combination types (peft 0.21):

- ``cat`` (default): concatenates the ranks; the merged update is exactly
  ``sum_i w_i * B_i A_i``, the adapter counterpart of Prometheus 2's linear weight merge
  (``theta = sum_i w_i theta_i`` over fine-tuned models of one base). Rank = sum of the ranks.
- ``svd``: the same weighted sum, re-factorised to ``svd_rank`` (default: the largest rank) by
  SVD: smaller, approximate, ranks and targets may differ.
- ``linear``: combines the A and B matrices separately (needs equal ranks); cheap, but the product
  carries cross terms, so it only approximates the weighted sum (peft's own caveat).
- ``ties``, ``dare_linear``, ``dare_ties``, ``magnitude_prune`` and their ``*_svd`` forms: prune
  each adapter's update to ``density`` (and for TIES elect a sign per weight,
  ``majority_sign_method``) before summing; they need ``density``.

Weights default to ``1/n`` each (an average, like mergekit's normalised linear merge that
Prometheus 2 used).

Example:
    >>> summary = merge_adapters(["out/abs", "out/rel"], "out/merged")                  # doctest: +SKIP
    >>> summary = merge_adapters(["out/abs", "out/rel"], "out/merged-full", into_base=True)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

logger = logging.getLogger(__name__)

MERGE_METHODS: tuple[str, ...] = ("cat", "svd", "linear", "ties", "ties_svd", "dare_linear", "dare_ties",
                                  "dare_linear_svd", "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd")
DENSITY_METHODS: tuple[str, ...] = tuple(m for m in MERGE_METHODS if m.startswith(("ties", "dare", "magnitude")))
SIGN_METHODS: tuple[str, ...] = ("total", "frequency")
MERGED = "default"  # saved at the folder's root by save_pretrained (other names go to a subfolder)
INFO_FILE = "merge_info.json"


class MergeError(ValueError):
    """Adapters that cannot be merged as asked (the message says why)."""


def adapter_base(adapter: str | Path) -> str:
    """The base model an adapter folder was trained on (its ``adapter_config.json``)."""
    path = Path(adapter) / "adapter_config.json"
    if not path.is_file():
        raise MergeError(f"{adapter}: not a peft adapter folder (no adapter_config.json)")
    config = json.loads(path.read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise MergeError(f"{path}: no base_model_name_or_path; pass the base model explicitly")
    if config.get("peft_type", "LORA") != "LORA":
        raise MergeError(f"{adapter}: a {config.get('peft_type')} adapter; only LoRA adapters can be merged")
    return base


def check_merge_options(n: int, weights: Sequence[float] | None, method: str, density: float | None,
                        majority_sign_method: str = "total") -> list[float]:
    """Validate the options; returns the weights (``1/n`` each by default)."""
    if n < 1:
        raise MergeError("give at least one adapter")
    if method not in MERGE_METHODS:
        raise MergeError(f"unknown merge method {method!r}; choose one of {', '.join(MERGE_METHODS)}")
    if weights is None:
        weights = [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise MergeError(f"{len(weights)} weights for {n} adapters")
    if method in DENSITY_METHODS:
        if density is None:
            raise MergeError(f"method {method} needs a density (the kept fraction of each update, in (0, 1])")
        if not 0 < density <= 1:
            raise MergeError(f"density must be in (0, 1], got {density}")
    elif density is not None:
        raise MergeError(f"density applies to {', '.join(DENSITY_METHODS)}, not to {method}")
    if majority_sign_method not in SIGN_METHODS:
        raise MergeError(f"majority_sign_method must be one of {', '.join(SIGN_METHODS)}")
    return weights


def load_adapters(model: Any, adapters: Sequence[str | Path]) -> tuple[Any, list[str]]:
    """Wrap ``model`` with every adapter, named ``adapter_0``, ``adapter_1``...; returns the
    PeftModel and the names."""
    from peft import PeftModel

    names = [f"adapter_{i}" for i in range(len(adapters))]
    peft_model = PeftModel.from_pretrained(model, str(adapters[0]), adapter_name=names[0])
    for name, adapter in zip(names[1:], adapters[1:]):
        peft_model.load_adapter(str(adapter), adapter_name=name)
    return peft_model, names


def combine(peft_model: Any, names: Sequence[str], weights: Sequence[float], method: str = "cat", *,
            density: float | None = None, majority_sign_method: str = "total", svd_rank: int | None = None,
            merged_name: str = MERGED) -> str:
    """Add the weighted combination of the loaded adapters ``names`` as ``merged_name`` and make it
    the active adapter (the sources stay loaded). peft's errors become :class:`MergeError`."""
    weights = check_merge_options(len(names), weights, method, density, majority_sign_method)
    for name in names:
        config = peft_model.peft_config[name]
        if getattr(config, "use_dora", False):
            raise MergeError(f"{name}: DoRA adapters cannot be combined by add_weighted_adapter")
        if getattr(config, "use_rslora", False):
            # the merged adapter gets lora_alpha = rank; with rsLoRA scaling that is not a unit scale
            raise MergeError(f"{name}: rsLoRA adapters are not supported by this merge (the merged scale would be wrong)")
    kwargs: dict[str, Any] = {"combination_type": method, "majority_sign_method": majority_sign_method}
    if density is not None:
        kwargs["density"] = density
    if svd_rank is not None:
        kwargs["svd_rank"] = svd_rank
    try:
        peft_model.add_weighted_adapter(list(names), list(weights), adapter_name=merged_name, **kwargs)
    except (ValueError, TypeError) as err:
        hint = " (use cat or svd for adapters of different ranks)" if "same r value" in str(err) else ""
        raise MergeError(f"peft cannot merge these adapters with {method}: {err}{hint}") from None
    peft_model.set_adapter(merged_name)
    return merged_name


def merge_adapters(adapters: Sequence[str | Path], output: str | Path, *, weights: Sequence[float] | None = None,
                   method: str = "cat", base: str | None = None, into_base: bool = False, density: float | None = None,
                   majority_sign_method: str = "total", svd_rank: int | None = None, dtype: str = "auto",
                   device_map: str | None = None) -> dict[str, Any]:
    """Merge LoRA ``adapters`` of one base model; save a peft adapter folder to ``output`` (loads
    with ``--adapter`` / ``Judge.from_pretrained(base, adapter=output)``), or with ``into_base``
    the merged full model and its tokenizer (loads with ``--model output``). Returns a summary
    (also written to ``output/merge_info.json``).

    Example:
        >>> merge_adapters(["out/abs", "out/rel"], "out/merged", method="svd", svd_rank=16)  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..embedded import resolve_model_path

    adapters = [str(a) for a in adapters]
    weights = check_merge_options(len(adapters), weights, method, density, majority_sign_method)
    bases = [adapter_base(a) for a in adapters]
    if base is None:
        if len({str(Path(b)) for b in bases}) > 1:
            raise MergeError(f"the adapters were trained on different bases ({', '.join(sorted(set(bases)))}); "
                             "pass the base model explicitly if they are the same model")
        base = bases[0]
    output = Path(output)
    base_path = resolve_model_path(base)
    torch_dtype: Any = dtype if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch_dtype, device_map=device_map)
    peft_model, names = load_adapters(model, adapters)
    merged = combine(peft_model, names, weights, method, density=density, majority_sign_method=majority_sign_method,
                     svd_rank=svd_rank)
    for name in names:
        peft_model.delete_adapter(name)
    output.mkdir(parents=True, exist_ok=True)
    tokenizer_source = adapters[0] if (Path(adapters[0]) / "tokenizer_config.json").is_file() else base_path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    rank = peft_model.peft_config[merged].r
    if into_base:
        full = peft_model.merge_and_unload()
        full.save_pretrained(output)
    else:
        peft_model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    summary = {"adapters": adapters, "weights": weights, "method": method, "base": base, "into_base": into_base,
               "density": density, "majority_sign_method": majority_sign_method, "svd_rank": svd_rank,
               "rank": rank, "output": str(output)}
    (output / INFO_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
