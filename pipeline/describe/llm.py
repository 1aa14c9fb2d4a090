"""The LLM backend: class descriptions from the OpenAI API or any OpenAI-compatible server
(vLLM, Ollama, llama.cpp server) through the official `openai` client.

Requests run concurrently under a bound. Transient failures (408/409/429/5xx, timeouts,
connection errors) are retried by the client's own machinery with exponential backoff, honouring
`Retry-After`; an empty, unparseable or malformed answer is asked again up to `parse_retries`
times, then reported for its class. Every usable answer goes to the `AnswerCache` at once, so a
rerun asks only what is not answered yet, and a rerun with the same settings asks nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from urllib.parse import urlparse

import openai
import pandas as pd

from pipeline.describe import DESCRIPTION_COLUMNS
from pipeline.describe.answer_cache import AnswerCache, request_key
from pipeline.describe.prompts import PromptTemplate, rendered_hash

OPENAI_URL = "https://api.openai.com/v1"
API_KEY_VARIABLE = "OPENAI_API_KEY"
# USD per million (prompt, completion) tokens; a model not listed gets a token count only.
PRICES = {"gpt-3.5-turbo": (0.50, 1.50), "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00),
          "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.00, 8.00), "gpt-4.1-nano": (0.10, 0.40)}
FATAL_ERRORS = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError,
                openai.BadRequestError)


class LLMError(RuntimeError):
    """The backend cannot run at all (missing key, refused credentials, unknown model)."""


@dataclasses.dataclass(frozen=True)
class LLMSettings:
    model: str = "gpt-3.5-turbo"
    base_url: str | None = None  # None: the OpenAI API
    temperature: float = 0.7
    max_tokens: int = 256
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    parse_retries: int = 2

    @property
    def host(self) -> str:
        return urlparse(self.base_url or OPENAI_URL).netloc


@dataclasses.dataclass(frozen=True)
class Request:
    class_id: int
    class_name: str
    sample_index: int
    messages: list
    key: str


def plan_requests(classes: pd.DataFrame, template: PromptTemplate, samples_per_class: int,
                  settings: LLMSettings) -> list[Request]:
    """One request per class and sample, keyed by everything that shapes its answer."""
    requests = []
    for class_id, class_name in zip(classes["class_id"], classes["class_name"]):
        messages = template.messages(class_name)
        for sample in range(samples_per_class):
            key = request_key(backend="openai", host=settings.host, model=settings.model,
                              prompt=rendered_hash(messages), class_name=class_name,
                              sample_index=sample, temperature=settings.temperature,
                              max_tokens=settings.max_tokens)
            requests.append(Request(int(class_id), class_name, sample, messages, key))
    return requests


@dataclasses.dataclass
class Estimate:
    requests: int
    prompt_tokens: int
    completion_tokens: int  # at most: max_tokens per request
    cost_usd: float | None  # None: no price known for the model (e.g. a local server)

    def describe(self, model: str) -> str:
        cost = (f"at most ${self.cost_usd:.4f}" if self.cost_usd is not None
                else f"cost unknown (no price for {model!r}; a local server costs nothing)")
        return (f"{self.requests} request(s) to make to {model}: about {self.prompt_tokens:,} "
                f"prompt + at most {self.completion_tokens:,} completion tokens, {cost}")


def estimate(requests: list[Request], settings: LLMSettings) -> Estimate:
    """Token and cost estimate before spending anything (about 4 characters a token, plus the
    chat format's few tokens a message; completions counted at max_tokens)."""
    prompt = sum(sum(math.ceil(len(m["content"]) / 4) + 4 for m in r.messages) + 3
                 for r in requests)
    completion = len(requests) * settings.max_tokens
    price = PRICES.get(settings.model) if settings.base_url is None else None
    cost = (prompt * price[0] + completion * price[1]) / 1e6 if price else None
    return Estimate(len(requests), prompt, completion, cost)


@dataclasses.dataclass
class RunReport:
    asked: int = 0  # HTTP requests made through the client (its own retries not counted)
    answered: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: dict[str, str] = dataclasses.field(default_factory=dict)  # request key -> reason


def make_client(settings: LLMSettings, api_key: str | None) -> openai.AsyncOpenAI:
    """The official async client; the key comes from the caller (the environment), never params."""
    if not api_key:
        if settings.base_url is None:
            raise LLMError(f"describe.backend 'openai' needs an API key in the {API_KEY_VARIABLE} "
                           "environment variable (never in params.yaml); or set "
                           "describe.openai.base_url to an OpenAI-compatible server")
        api_key = "unused"  # local OpenAI-compatible servers ignore it, the client wants one
    return openai.AsyncOpenAI(api_key=api_key, base_url=settings.base_url,
                              timeout=settings.timeout, max_retries=settings.max_retries)


def ask_all(requests: list[Request], template: PromptTemplate, cache: AnswerCache,
            settings: LLMSettings, api_key: str | None, progress=None) -> RunReport:
    """Ask every request not yet in `cache`; usable answers are cached as they arrive."""
    pending = [r for r in requests if r.key not in cache]
    report = RunReport()
    if pending:
        asyncio.run(_ask_all(pending, template, cache, settings, api_key, report, progress))
    return report


async def _ask_all(pending, template, cache, settings, api_key, report, progress) -> None:
    client = make_client(settings, api_key)
    bound = asyncio.Semaphore(settings.concurrency)
    try:
        outcomes = await asyncio.gather(
            *(_ask(client, bound, request, template, cache, settings, report, progress)
              for request in pending), return_exceptions=True)
    finally:
        await client.close()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    fatal = [e for e in errors if isinstance(e, FATAL_ERRORS)]
    if fatal:
        raise LLMError(f"the server refused the request ({type(fatal[0]).__name__}: "
                       f"{getattr(fatal[0], 'message', fatal[0])}); check the model name "
                       f"{settings.model!r}, base_url and {API_KEY_VARIABLE}")
    if errors:
        raise errors[0]


async def _ask(client, bound, request: Request, template: PromptTemplate, cache: AnswerCache,
               settings: LLMSettings, report: RunReport, progress) -> None:
    reason = ""
    async with bound:
        for _ in range(1 + settings.parse_retries):
            report.asked += 1
            try:
                response = await client.chat.completions.create(
                    model=settings.model, messages=request.messages,
                    temperature=settings.temperature, max_tokens=settings.max_tokens)
            except FATAL_ERRORS:
                raise
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                reason = f"no answer after {settings.max_retries} retries ({type(error).__name__})"
                break  # the client has retried already
            except openai.APIStatusError as error:
                reason = f"HTTP {error.status_code} after {settings.max_retries} retries"
                break
            except (openai.APIResponseValidationError, ValueError) as error:
                reason = f"malformed response ({type(error).__name__})"
                continue
            text = _content(response)
            if text is None:
                reason = "malformed response (no choices[0].message.content)"
                continue
            if not template.descriptions(request.class_name, text):
                reason = "empty answer" if not text.strip() else f"unparseable answer: {text[:80]!r}"
                continue
            usage = getattr(response, "usage", None)
            tokens = (getattr(usage, "prompt_tokens", 0) or 0,
                      getattr(usage, "completion_tokens", 0) or 0)
            report.prompt_tokens += tokens[0]
            report.completion_tokens += tokens[1]
            report.answered += 1
            cache.put(request.key, {
                "class_name": request.class_name, "sample_index": request.sample_index,
                "model": settings.model, "host": settings.host, "answer": text,
                "prompt_tokens": tokens[0], "completion_tokens": tokens[1],
                "answered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            reason = ""
            break
    if reason:
        report.failures[request.key] = reason
    if progress is not None:
        progress.update(1)


def _content(response) -> str | None:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else ("" if content is None else None)


def descriptions_table(requests: list[Request], template: PromptTemplate,
                       cache: AnswerCache) -> pd.DataFrame:
    """The descriptions of every answered request, numbered per class (`sample_index`)."""
    rows, count = [], {}
    for request in requests:
        record = cache.get(request.key)
        if record is None:
            continue
        for text in template.descriptions(request.class_name, record["answer"]):
            index = count.get(request.class_id, 0)
            count[request.class_id] = index + 1
            rows.append((request.class_id, request.class_name, text, "llm", template.name, index))
    return pd.DataFrame(rows, columns=DESCRIPTION_COLUMNS)
