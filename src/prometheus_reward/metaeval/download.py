"""The meta-evaluation sets, fetched once from a pinned prometheus-eval commit and checked by SHA-256.

Without ``--data``, ``meta-eval`` uses the upstream file of the prometheus-eval GitHub repository
at a fixed commit. It is downloaded once into ``cache_home() / "benchmarks"`` (``$PROMETHEUS_REWARD_HOME``,
default ``~/.cache/prometheus_reward``), written to a temporary file beside its final name, checked
against the pinned SHA-256 and only then renamed into place; a file whose checksum differs is
deleted. Once cached (and still matching its checksum) no network access happens at all.

Example:
    >>> from prometheus_reward.metaeval.download import resolve_benchmark_data
    >>> resolve_benchmark_data("vicuna", "my/vicuna_eval.json")   # a local copy: used as it is
    PosixPath('my/vicuna_eval.json')
    >>> path = resolve_benchmark_data("hhh")     # doctest: +SKIP
    downloaded hhh_alignment_eval.json (1207596 bytes, sha256 verified) to ~/.cache/prometheus_reward/benchmarks/...
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path

from .spec import DataError, PinnedFile, SpecTable, benchmark_spec

UPSTREAM = "https://raw.githubusercontent.com/prometheus-eval/prometheus-eval"
URL_ENV = "PROMETHEUS_REWARD_DATA_URL"

# The registered sets' pinned upstream files (a view of their specs: ``BenchmarkSpec.pin``).
PINNED = SpecTable(lambda spec: spec.pin)
__all__ = ["PINNED", "PinnedFile", "benchmark_cache_dir", "pinned_url", "resolve_benchmark_data"]


def benchmark_cache_dir() -> Path:
    """Where downloaded sets are kept: ``cache_home() / "benchmarks"``."""
    from ..embedded import cache_home

    return cache_home() / "benchmarks"


def pinned_url(pin: PinnedFile, base_url: str | None = None) -> str:
    """The download address of ``pin``: ``base_url`` (or ``$PROMETHEUS_REWARD_DATA_URL``, else the
    raw GitHub address of prometheus-eval) followed by ``/<commit>/<path>``."""
    base = base_url or os.environ.get(URL_ENV) or UPSTREAM
    return f"{base.rstrip('/')}/{pin.commit}/{pin.path}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_benchmark_data(benchmark: str, data: str | Path | None = None, *, cache_dir: str | Path | None = None,
                           base_url: str | None = None, progress: bool = True, timeout: float = 60.0) -> Path:
    """The data file (or folder) to load ``benchmark`` from.

    ``data`` given: returned as it is (a file, or a folder holding the usual file name). Otherwise
    the pinned upstream file of its spec (``BenchmarkSpec.pin``), from the cache when it is there with the right
    checksum, else downloaded into ``cache_dir`` (default :func:`benchmark_cache_dir`) and verified.
    Raises :class:`DataError` (one line, saying what to do) when the set has no pinned file, the
    download fails or the checksum differs.

    Example:
        >>> resolve_benchmark_data("autoj", "data/autoj_pairwise.jsonl")
        PosixPath('data/autoj_pairwise.jsonl')
        >>> resolve_benchmark_data("custom")
        Traceback (most recent call last):
        ...
        prometheus_reward.metaeval.spec.DataError: --benchmark custom has no download; pass --data PATH (see docs/meta_evaluation.md)
    """
    if data is not None:
        return Path(data)
    pin = benchmark_spec(benchmark).pin
    if pin is None:
        raise DataError(f"--benchmark {benchmark} has no download; pass --data PATH (see docs/meta_evaluation.md)")
    folder = Path(cache_dir) if cache_dir is not None else benchmark_cache_dir()
    target = folder / pin.filename
    if target.is_file():
        found = _sha256(target)
        if found == pin.sha256:
            return target  # cached and intact: no network
        print(f"{target}: sha256 {found} is not the pinned {pin.sha256}; downloading it again", file=sys.stderr)
    _download(pin, pinned_url(pin, base_url), target, progress, timeout)
    print(f"downloaded {pin.filename} ({pin.size} bytes, sha256 verified) to {target}", file=sys.stderr)
    return target


def _download(pin: PinnedFile, url: str, target: Path, progress: bool, timeout: float) -> None:
    import httpx
    from tqdm.auto import tqdm

    hint = "pass --data PATH to use a local copy"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the data cache {target.parent}: {err}; {hint}") from err
    # The temporary file sits beside the target so that the final rename is atomic (same file
    # system); a name of its own per call, so concurrent downloads never write into one file.
    tmp = target.parent / f".{pin.filename}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        digest = hashlib.sha256()
        with tmp.open("xb") as out:  # "x": the usual permissions (umask), unlike mkstemp's 0600
            try:
                with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
                    if response.status_code != 200:
                        raise DataError(f"could not download {url} (HTTP {response.status_code} "
                                        f"{response.reason_phrase}); {hint}")
                    total = int(response.headers.get("content-length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=pin.filename, disable=not progress,
                              file=sys.stderr, leave=False) as bar:
                        for chunk in response.iter_bytes(1 << 16):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
            except httpx.HTTPError as err:
                reason = " ".join(str(err).split()) or type(err).__name__  # one line
                raise DataError(f"could not download {url} ({reason}); {hint}") from err
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != pin.sha256:
            raise DataError(f"{url}: expected sha256 {pin.sha256}, got {got}; nothing was kept "
                            f"(a changed or corrupted file; {hint})")
        os.replace(tmp, target)
    except OSError as err:  # a read-only or full cache folder
        raise DataError(f"cannot write the data cache {target.parent}: {err}; {hint}") from err
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; otherwise a partial or wrong file
