"""A real ``vllm serve`` (vLLM's OpenAI-compatible server) on loopback for the tests: started in its
own session on a free port, on the embedded Gemma-3-270M, small (2048-token context, eager mode, a
1 GiB CPU KV cache); stoppable with SIGKILL and restartable on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SERVED_NAME = "embedded"
# the base model has no chat template: a plain one, so the chat API can be exercised too
CHAT_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% if not loop.last %}\n\n{% endif %}{% endfor %}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VLLMServe:
    def __init__(self, model_dir: Path, workdir: Path, port: int | None = None):
        self.model_dir, self.workdir = model_dir, workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "vllm-serve.log"
        self.template = workdir / "chat_template.jinja"
        self.template.write_text(CHAT_TEMPLATE)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """host:port, as verl's reward router address is written."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 300) -> "VLLMServe":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
                   "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
                   "--max-model-len", "2048", "--enforce-eager", "--dtype", "float32", "--seed", "0",
                   "--chat-template", str(self.template)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"vllm serve did not become healthy in {timeout:.0f}s:\n{self.log.read_text()[-3000:]}")

    def ensure_started(self) -> "VLLMServe":
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def stop(self) -> None:
        """SIGKILL the server and its engine process (its own session)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None
