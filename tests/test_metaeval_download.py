"""The pinned benchmark download, against a real HTTP server on loopback serving the fixture slices.

The production pins (upstream commit and SHA-256) stay as they are; each test swaps in a pin for a
fixture file, with its real checksum, through monkeypatch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prometheus_reward.metaeval import DataError, load_benchmark
from prometheus_reward.metaeval import download as D
from prometheus_reward.metaeval.data import DEFAULT_FILES
from prometheus_reward.registry import BENCHMARKS

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a test commit: the server's folder name


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, requests: list[str], **kwargs):
        self.requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/truncated/"):  # promises more bytes than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"[" * 1000)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class Server:
    """``http.server`` in a thread on 127.0.0.1 (port 0), serving ``root`` as ``/<commit>/<path>``."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        handler = partial(_Handler, directory=str(root), requests=self.requests)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def publish(self, pin: D.PinnedFile, data: bytes) -> None:
        target = self.root / pin.commit / pin.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "www")
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _restore_specs():
    """Every registered benchmark spec as it was before the test (``_pin`` replaces some)."""
    saved = {name: BENCHMARKS.get(name) for name in BENCHMARKS}
    yield
    for name, spec in saved.items():
        BENCHMARKS.register(name, spec, replace=True)


def _pin(benchmark: str, data: bytes, sha256: str | None = None) -> D.PinnedFile:
    """Point the pinned file of ``benchmark``'s spec at test bytes (real or given checksum)."""
    upstream = D.PINNED[benchmark]
    pin = D.PinnedFile(upstream.filename, COMMIT, upstream.path, sha256 or hashlib.sha256(data).hexdigest(), len(data))
    BENCHMARKS.register(benchmark, dataclasses.replace(BENCHMARKS.get(benchmark), pin=pin), replace=True)
    return pin


def _fixture(name: str) -> bytes:
    return (REPO / "tests" / "fixtures" / "benchmarks" / name).read_bytes()


def test_first_download_lands_in_the_cache_then_works_offline(server, monkeypatch, tmp_path, capsys):
    data = _fixture("vicuna_eval.json")
    pin = _pin("vicuna", data)
    server.publish(pin, data)
    cache = tmp_path / "cache"
    path = D.resolve_benchmark_data("vicuna", cache_dir=cache, base_url=server.url, progress=True)
    assert path == cache / "vicuna_eval.json" and path.read_bytes() == data
    assert sorted(p.name for p in cache.iterdir()) == ["vicuna_eval.json"]  # no temporary file left
    assert server.requests == [f"/{COMMIT}/eval/benchmark/data/vicuna_eval.json"]
    err = capsys.readouterr().err
    assert f"downloaded vicuna_eval.json ({len(data)} bytes, sha256 verified) to {path}" in err

    server.stop()  # offline from here: the cached, intact file is used without a request
    again = D.resolve_benchmark_data("vicuna", cache_dir=cache, base_url=server.url)
    assert again == path and len(server.requests) == 1
    assert "downloaded" not in capsys.readouterr().err
    bench = load_benchmark("vicuna", again)
    assert len(bench) == 13 and bench.items[4].gold == [4.0, 5.0, 5.0]


def test_load_benchmark_without_data_downloads_into_cache_home(server, monkeypatch, tmp_path):
    """``data=None``: the base URL from PROMETHEUS_REWARD_DATA_URL, the cache under PROMETHEUS_REWARD_HOME."""
    data = _fixture("hhh_alignment_eval.json")
    pin = _pin("hhh", data)
    server.publish(pin, data)
    monkeypatch.setenv("PROMETHEUS_REWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(D.URL_ENV, server.url + "/")
    bench = load_benchmark("hhh", limit=4)
    assert bench.path == str(tmp_path / "home" / "benchmarks" / "hhh_alignment_eval.json")
    assert len(bench) == 4 and bench.items[0].group == "harmless"
    assert (tmp_path / "home" / "benchmarks" / "hhh_alignment_eval.json").read_bytes() == data


def test_checksum_mismatch_keeps_nothing(server, monkeypatch, tmp_path):
    data = _fixture("mt_bench_eval.json")
    wrong = hashlib.sha256(b"not these bytes").hexdigest()
    pin = _pin("mt_bench", data, sha256=wrong)
    server.publish(pin, data)
    cache = tmp_path / "cache"
    got = hashlib.sha256(data).hexdigest()
    with pytest.raises(DataError, match=rf"expected sha256 {wrong}, got {got}; nothing was kept") as info:
        D.resolve_benchmark_data("mt_bench", cache_dir=cache, base_url=server.url, progress=False)
    assert "\n" not in str(info.value) and "--data PATH" in str(info.value)
    assert list(cache.iterdir()) == []  # neither the final file nor the temporary one


def test_a_corrupted_cached_file_is_downloaded_again(server, monkeypatch, tmp_path, capsys):
    data = _fixture("autoj_pairwise.jsonl")
    pin = _pin("autoj", data)
    server.publish(pin, data)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "autoj_pairwise.jsonl").write_bytes(data[:-100])  # e.g. a copy edited or truncated by hand
    path = D.resolve_benchmark_data("autoj", cache_dir=cache, base_url=server.url, progress=False)
    assert path.read_bytes() == data and len(server.requests) == 1
    assert "is not the pinned" in capsys.readouterr().err
    labels = [item.label for item in load_benchmark("autoj", path).items]
    assert sorted(set(labels)) == [0, 1, 2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_host_says_to_pass_data(monkeypatch, tmp_path):
    _pin("vicuna", _fixture("vicuna_eval.json"))
    cache = tmp_path / "cache"
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(DataError) as info:
        D.resolve_benchmark_data("vicuna", cache_dir=cache, base_url=url, progress=False)
    message = str(info.value)
    assert re.fullmatch(rf"could not download {re.escape(url)}/{COMMIT}/eval/benchmark/data/vicuna_eval.json "
                        r"\(.+\); pass --data PATH to use a local copy", message), message
    assert list(cache.iterdir()) == []


def test_http_404_and_a_cut_transfer_keep_nothing(server, monkeypatch, tmp_path):
    _pin("hhh", _fixture("hhh_alignment_eval.json"))  # not published: 404
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"\(HTTP 404 [^)]*\); pass --data PATH to use a local copy$"):
        D.resolve_benchmark_data("hhh", cache_dir=cache, base_url=server.url, progress=False)
    assert list(cache.iterdir()) == []
    with pytest.raises(DataError, match=r"could not download .*/truncated/.*; pass --data PATH"):
        D.resolve_benchmark_data("hhh", cache_dir=cache, base_url=server.url + "/truncated", progress=False)
    assert list(cache.iterdir()) == [] and len(server.requests) == 2


def test_data_given_bypasses_the_download(tmp_path):
    cache = tmp_path / "cache"
    url = f"http://127.0.0.1:{_closed_port()}"  # would fail if it were asked
    local = tmp_path / "mine.json"
    assert D.resolve_benchmark_data("vicuna", local, cache_dir=cache, base_url=url) == local
    assert D.resolve_benchmark_data("custom", str(tmp_path), cache_dir=cache, base_url=url) == tmp_path
    assert not cache.exists()
    with pytest.raises(DataError, match=r"--benchmark custom has no download; pass --data PATH"):
        D.resolve_benchmark_data("custom", cache_dir=cache, base_url=url)
    with pytest.raises(DataError, match="unknown benchmark 'flask'"):
        D.resolve_benchmark_data("flask", cache_dir=cache, base_url=url)


def test_an_upstream_checkout_folder_loads_autoj_under_its_json_name(tmp_path):
    """prometheus-eval names the file autoj_pairwise.json (JSON Lines inside); a folder with it works."""
    shutil.copy(REPO / "tests" / "fixtures" / "benchmarks" / "autoj_pairwise.jsonl", tmp_path / "autoj_pairwise.json")
    upstream = load_benchmark("autoj", tmp_path)
    ours = load_benchmark("autoj", REPO / "tests" / "fixtures" / "benchmarks")
    assert upstream.path.endswith("autoj_pairwise.json") and len(upstream) == 15
    assert [(i.instruction, i.label) for i in upstream.items] == [(i.instruction, i.label) for i in ours.items]


def test_production_pins_match_the_docs_and_the_fixture_readme(monkeypatch):
    monkeypatch.delenv(D.URL_ENV, raising=False)
    docs = (REPO / "docs" / "meta_evaluation.md").read_text(encoding="utf-8")
    fixtures = (REPO / "tests" / "fixtures" / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert set(D.PINNED) == set(DEFAULT_FILES)
    for benchmark, pin in D.PINNED.items():
        assert pin.filename == DEFAULT_FILES[benchmark]
        assert re.fullmatch(r"[0-9a-f]{40}", pin.commit) and re.fullmatch(r"[0-9a-f]{64}", pin.sha256)
        assert D.pinned_url(pin).startswith(
            f"https://raw.githubusercontent.com/prometheus-eval/prometheus-eval/{pin.commit}/eval/benchmark/data/")
        for text in (docs, fixtures):
            assert pin.sha256 in text and pin.commit in text
        assert f"| `{pin.path}` |" in docs and f"{pin.size:,}" in docs
