"""Model-backed policies: a local HF model (trained run or registry name) and any OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import DeepRetrievalError, EndpointFailure
from ..prompts import Context, PromptSettings
from ..search.resilience import Fault, Retrier, RetryPolicy, retry_after_seconds
from ..tasks import default_task
from ..tasks.base import Task, propose_output, render_prompts, show_context
from ..types import Example
from .base import PolicyOutput

__all__ = ["HFPolicy", "OpenAIPolicy", "PromptSettings", "parse_openai_spec", "prompt_settings_for"]


def read_policy_settings(folder: Path) -> dict[str, Any]:
    """Settings a trained run saved beside its weights (policy.json), if any."""
    path = folder / "policy.json"
    if not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeepRetrievalError(f"{path}: unreadable policy settings ({exc.msg})") from None
    if not isinstance(saved, dict):
        raise DeepRetrievalError(f"{path}: policy settings must be a JSON object")
    return saved


def prompt_settings_for(
    ref: str, overrides: dict[str, Any] | None = None, defaults: PromptSettings | None = None
) -> PromptSettings:
    """A model policy's prompt settings: what a trained run saved (policy.json), else ``defaults`` (the
    task's); each override (a command-line flag) changes only itself."""
    folder = Path(resolve_run_dir(ref))
    saved = read_policy_settings(folder) if folder.is_dir() else {}
    names = {f.name for f in fields(PromptSettings)}
    base = (defaults or PromptSettings()).replace(**{k: v for k, v in saved.items() if k in names})
    return base.replace(**(overrides or {}))


def resolve_run_dir(ref: str) -> str:
    """A training output dir means its ``final`` folder."""
    path = Path(ref)
    if path.is_dir() and (path / "final" / "config.json").exists():
        return str(path / "final")
    return ref


class HFPolicy:
    """Greedy (by default), batched generation with a local model, prompts via its chat template."""

    def __init__(
        self,
        ref: str,
        *,
        task: Task | None = None,
        backend: Any = None,
        prompt: PromptSettings | None = None,
        batch_size: int = 16,
        name: str | None = None,
        model: Any = None,
        tokenizer: Any = None,
        context: Context | None = None,
    ) -> None:
        self.ref = resolve_run_dir(ref)
        self.task, self.backend = task or default_task(), backend
        self.prompt = prompt or prompt_settings_for(ref, defaults=self.task.default_prompt())
        self.task.check(self.prompt)
        self.batch_size = batch_size
        self.name = name or f"{Path(ref).name or ref}[{self.prompt.mode}]"
        self._model, self._tokenizer = model, tokenizer
        self.context = context
        _require_context(str(ref), self.task, self.prompt, context)

    def describe(self) -> dict[str, object]:
        return {"policy": "hf", "model": self.ref, "task": self.task.name, **self.prompt.__dict__}

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from ..models import load_model_and_tokenizer

            self._model, self._tokenizer = load_model_and_tokenizer(self.ref)
            self._model.eval()
        return self._model, self._tokenizer

    def show(self, examples: Sequence[Example]) -> list[Example]:
        """The examples with the retrieved context their prompts (and, in feedback mode, actions) need."""
        return show_context(self.task, examples, self.prompt, self.context)

    def prompts(self, examples: Sequence[Example], *, shown: bool = False) -> list[str]:
        """The text the model is given for each example (retrieved context included; ``shown``: already)."""
        context = None if shown else self.context
        return render_prompts(self.task, examples, self.prompt, self._load()[1], context, shown=shown)

    def complete(self, examples: Sequence[Example], *, shown: bool = False) -> list[str]:
        import torch

        model, tokenizer = self._load()
        texts = self.prompts(examples, shown=shown)
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        completions: list[str] = []
        try:
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    texts[start : start + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                with torch.no_grad():
                    generated = model.generate(
                        **batch,
                        max_new_tokens=self.prompt.max_new_tokens,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                        eos_token_id=[
                            tokenizer.eos_token_id,
                            *self.task.stop_token_ids(tokenizer, self.prompt.variant),
                        ],
                    )
                new = generated[:, batch["input_ids"].shape[1] :]
                completions += tokenizer.batch_decode(new, skip_special_tokens=True)
        finally:
            tokenizer.padding_side = side
        return completions

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        shown = self.show(examples)  # once: the feedback mode's action edits the menu its prompt showed
        completions = self.complete(shown, shown=True)
        return [
            propose_output(self.task, c, e, self.prompt, self.backend) for c, e in zip(completions, shown, strict=True)
        ]


class OpenAIPolicy:
    """Any OpenAI-compatible chat endpoint (vLLM, Ollama, ...): ``openai:<model>@<base url>``.

    The API key comes from ``OPENAI_API_KEY`` (never logged). Requests run concurrently under the
    resilience layer's :class:`~deepretrieval.search.resilience.Retrier`: retries with jittered exponential
    back-off on 429, 5xx, transport errors and unusable replies, honouring ``Retry-After`` (a longer wait
    than ``max_wait`` is not waited for); an endpoint that keeps failing raises ``EndpointFailure`` rather
    than yielding an empty query. ``sleep``: the waits (tests).
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        task: Task | None = None,
        backend: Any = None,
        prompt: PromptSettings | None = None,
        client: Any = None,
        concurrency: int = 8,
        retries: int = 3,
        backoff_seconds: float = 1.0,
        timeout: float = 60.0,
        context: Context | None = None,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.model, self.base_url = model, base_url.rstrip("/")
        self.task, self.backend = task or default_task(), backend
        self.prompt = prompt or self.task.default_prompt()
        self.task.check(self.prompt)
        self.context = context
        _require_context(model, self.task, self.prompt, context)
        self.name = f"openai:{model}[{self.prompt.mode}]"
        self.concurrency, self.retries, self.backoff_seconds = concurrency, retries, backoff_seconds
        headers = {}
        if key := os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {key}"
        self.client = client or httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        policy = RetryPolicy(attempts=retries + 1, backoff=backoff_seconds, max_backoff=30.0, max_wait=max_wait)
        self.retrier = Retrier(
            policy, name=f"openai:{model}", failure=EndpointFailure, classify=_endpoint_fault, sleep=sleep
        )

    def describe(self) -> dict[str, object]:
        return {
            "policy": "openai",
            "model": self.model,
            "base_url": self.base_url,
            "task": self.task.name,
            **self.prompt.__dict__,
        }

    def _complete_one(self, example: Example) -> str:
        import httpx

        body = {
            "model": self.model,
            "messages": self.task.messages(example, self.prompt),
            "max_tokens": self.prompt.max_new_tokens,
            "temperature": 0.0,
        }

        def attempt() -> str:
            response = self.client.post("/chat/completions", json=body)
            if response.status_code in (429,) or response.status_code >= 500:
                raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
            if response.status_code >= 400:
                raise DeepRetrievalError(
                    f"{self.base_url}: HTTP {response.status_code} for model {self.model!r}: {response.text[:200]}"
                )
            return reply_content(response)

        return self.retrier.call(attempt, where=self.base_url)

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        shown = show_context(self.task, examples, self.prompt, self.context)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            completions = list(pool.map(self._complete_one, shown))
        return [
            propose_output(self.task, c, e, self.prompt, self.backend, prefilled=False)
            for c, e in zip(completions, shown, strict=True)
        ]


def _endpoint_fault(exc: BaseException) -> Fault | None:
    """What a chat endpoint's request retries: a transport error, a 429 or 5xx (its ``Retry-After`` read), an
    unusable reply."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return Fault(str(exc), retry_after_seconds(exc.response.headers.get("Retry-After")))
    if isinstance(exc, httpx.TransportError | UnusableReply):
        return Fault(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return None


class UnusableReply(ValueError):
    """A reply with no completion text in it: a failure of the endpoint (retried), never an empty query."""


def reply_content(response: Any) -> str:
    """The completion text of a chat-completions reply; anything else raises ``UnusableReply``."""
    try:
        body = response.json()
    except ValueError:
        raise UnusableReply(f"reply is not JSON: {response.text[:80]!r}") from None
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UnusableReply(f"reply has no choices: {str(body)[:80]}")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise UnusableReply(f"reply has no message content ({content!r})")
    return content


def _require_context(name: str, task: Task, settings: PromptSettings, context: Context | None) -> None:
    if task.needs_context(settings) and context is None:
        raise DeepRetrievalError(
            f"{name}: its prompts show retrieved context ({settings.context_docs} titles, mode {settings.mode}); "
            "give --data (the collection to retrieve it from) or --context-docs 0"
        )


def parse_openai_spec(spec: str) -> tuple[str, str]:
    """``openai:<model>@<base url>`` -> (model, base url)."""
    body = spec.removeprefix("openai:")
    model, sep, url = body.rpartition("@")
    if not sep or not model or not url.startswith(("http://", "https://")):
        raise DeepRetrievalError(f"policy {spec!r}: expected openai:<model>@<http(s) base url>")
    return model, url
