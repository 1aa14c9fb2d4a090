"""The LLM backend: class descriptions from the OpenAI API or any OpenAI-compatible server
(vLLM, Ollama, llama.cpp server) through the official `openai` client.

Requests run concurrently under a bound, after a first one asked alone: a refused key or an
unknown model fails every request alike, so it costs one request, and a fatal error later on (a
key revoked mid-run) drops the requests in flight at once. Transient failures (408/409/429/5xx,
timeouts, connection errors) are retried by the client's own machinery with exponential backoff,
honouring `Retry-After`; an empty, unparseable or malformed answer is asked again up to
`parse_retries` times, then reported for its class. Every usable answer goes to the `AnswerCache`
at once, so a rerun asks only what is not answered yet, and a rerun with the same settings asks
nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import time
from urllib.parse import urlparse

import openai
import pandas as pd

from pipeline.common import InputError
from pipeline.describe.answer_cache import AnswerCache, request_key
from pipeline.describe.prompts import PromptTemplate, rendered_hash
from pipeline.describe.settings import API_KEY_VARIABLE, LLMSettings
from pipeline.describe.table import DESCRIPTION_COLUMNS

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# USD per million (prompt, completion) tokens; a model not listed gets a token count only.
PRICES = {"gpt-3.5-turbo": (0.50, 1.50), "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00),
          "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.00, 8.00), "gpt-4.1-nano": (0.10, 0.40)}
# Errors every request would hit alike: stop at the first instead of paying for the rest.
FATAL_ERRORS = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)
PROBE_RETRIES = 1  # the first request's: an unreachable server is reported in seconds


class Unreachable(Exception):
    """No connection to the server at all (not a slow answer): every other request would wait
    through the client's retries to fail alike, so the run stops."""


class Unstorable(Exception):
    """An answer came back but cannot be written to the answer cache (a full disk, a quota, a
    read-only or forbidden folder): asking on would pay for answers thrown away."""


STOPPING_ERRORS = FATAL_ERRORS + (Unreachable, Unstorable)


class LLMError(InputError):
    """The backend cannot run at all (missing key, refused credentials, unknown model): a
    setting to fix, so the command exits as for invalid params."""

    exit_code = 2


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
    duplicated = classes["class_name"][classes["class_name"].duplicated()].tolist()
    if duplicated:
        raise LLMError(f"class names must be unique to be asked about: {duplicated[:10]} repeat")
    requests = []
    for class_id, class_name in zip(classes["class_id"], classes["class_name"]):
        messages = template.messages(class_name)
        for sample in range(samples_per_class):
            key = request_key(backend="openai", host=settings.host, model=settings.model,
                              prompt=rendered_hash(messages), parse=template.parse,
                              class_name=class_name,
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
                f"prompt + at most {self.completion_tokens:,} completion tokens, {cost} "
                "(before any retries)")


def estimate(requests: list[Request], settings: LLMSettings) -> Estimate:
    """Token and cost estimate before spending anything (about 4 characters a token, plus the
    chat format's few tokens a message; completions counted at max_tokens)."""
    prompt = sum(sum(math.ceil(len(m["content"]) / 4) + 4 for m in r.messages) + 3
                 for r in requests)
    completion = len(requests) * settings.max_tokens
    price = PRICES.get(settings.model) if settings.is_openai else None
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
    """The official async client. The key comes from the caller (the environment), never params,
    and goes only to the OpenAI API, an https server or this machine: never in clear text over
    a network to a server the user may not have meant to give it to."""
    url = urlparse(settings.url)
    if not api_key and settings.is_openai:
        raise LLMError(f"describe.backend 'openai' needs an API key in the {API_KEY_VARIABLE} "
                       "environment variable (never in params.yaml); or set "
                       "describe.openai.base_url to an OpenAI-compatible server")
    if not api_key or (url.scheme != "https" and url.hostname not in LOOPBACK_HOSTS):
        api_key = "unused"  # OpenAI-compatible servers without auth ignore it; the client wants one
    return openai.AsyncOpenAI(api_key=api_key, base_url=settings.url,
                              timeout=settings.timeout, max_retries=settings.max_retries)


def redact(text: str) -> str:
    """Server messages may quote part of the key (OpenAI's 401 does): never print it."""
    return re.sub(r"(sk|key)-[A-Za-z0-9_\-*.]{4,}", r"\1-***", str(text))


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
    stop = asyncio.Event()  # set by the first fatal error: requests not yet sent are not sent

    def start(requests, via=client):
        return [asyncio.ensure_future(
            _ask(via, bound, stop, request, template, cache, settings, report, progress))
            for request in requests]

    try:
        # The first request goes alone: were the key refused or the model unknown, the
        # `concurrency` requests sent together would all go out before the first refusal came
        # back. So a setting to fix costs one request, whatever the concurrency.
        # It is also retried less: a server that cannot be reached at all is reported at once.
        errors = await _until_fatal(start(pending[:1], client.with_options(
            max_retries=min(PROBE_RETRIES, settings.max_retries))))
        if not stop.is_set():
            errors += await _until_fatal(start(pending[1:]))
    finally:
        await client.close()
    unstorable = [e for e in errors if isinstance(e, Unstorable)]
    if unstorable:
        raise InputError(f"{unstorable[0]}: nothing more was asked; make room there (or name "
                         "another cache: --cache, $FGVC_CACHE_DIR) and rerun: the "
                         f"{len(cache)} answers stored are not asked again")
    unreachable = [e for e in errors if isinstance(e, Unreachable)]
    if unreachable:  # exit code 1, not LLMError's 2: the network, not a setting, may be at fault
        raise InputError(f"cannot reach the server {settings.host} ({settings.url}): "
                       f"{unreachable[0]}; check the network (or a proxy) and "
                       "describe.openai.base_url. Every answer received is cached: rerun to "
                       "ask only the rest")
    fatal = [e for e in errors if isinstance(e, FATAL_ERRORS)]
    if fatal:
        error = fatal[0]
        what = ("the API key was refused" if isinstance(error, openai.AuthenticationError)
                else redact(getattr(error, "message", error)))
        raise LLMError(f"the server refused the request (HTTP {error.status_code}: {what}); "
                       f"check the model name {settings.model!r}, base_url and "
                       f"{API_KEY_VARIABLE}")
    if errors:
        raise errors[0]


async def _until_fatal(tasks: list[asyncio.Future]) -> list[BaseException]:
    """Wait for every task, unless one fails fatally (e.g. a key revoked mid-run): then the
    others are cancelled at once rather than waited for, up to `timeout` each, as they would
    fail alike. Returns the errors the finished tasks raised."""
    errors, waiting = [], set(tasks)
    try:
        while waiting:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_EXCEPTION)
            errors += [t.exception() for t in tasks
                       if t in done and not t.cancelled() and t.exception() is not None]
            if any(isinstance(e, STOPPING_ERRORS) for e in errors):
                break
    finally:  # also on Ctrl-C: nothing is left running against a closed client
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
    return errors


async def _ask(client, bound, stop, request: Request, template: PromptTemplate,
               cache: AnswerCache, settings: LLMSettings, report: RunReport, progress) -> None:
    reason = ""
    async with bound:
        for _ in range(1 + settings.parse_retries):
            if stop.is_set():
                return
            report.asked += 1
            try:
                response = await client.chat.completions.create(
                    model=settings.model, messages=request.messages,
                    temperature=settings.temperature, max_tokens=settings.max_tokens)
            except FATAL_ERRORS:
                stop.set()
                raise
            except openai.APITimeoutError as error:  # slow, not gone: this request only
                reason = f"no answer ({type(error).__name__}) after the client's retries"
                break
            except openai.APIConnectionError as error:  # no connection, after the retries
                stop.set()
                cause = error.__cause__ or error
                raise Unreachable(f"{type(cause).__name__}: {redact(cause)[:160]}") from error
            except openai.APIStatusError as error:
                reason = f"HTTP {error.status_code}: {redact(error.message)[:120]}"
                break  # retried by the client where retrying helps (408/409/429/5xx)
            except (openai.APIResponseValidationError, ValueError) as error:
                reason = f"malformed response ({type(error).__name__})"
                continue
            usage = getattr(response, "usage", None)
            tokens = (getattr(usage, "prompt_tokens", 0) or 0,
                      getattr(usage, "completion_tokens", 0) or 0)
            report.prompt_tokens += tokens[0]  # paid for, usable or not
            report.completion_tokens += tokens[1]
            text, finish = _content(response)
            if text is None:
                reason = "malformed response (no choices[0].message.content)"
                continue
            if not template.descriptions(request.class_name, text, truncated=finish == "length"):
                reason = "empty answer" if not text.strip() else f"unparseable answer: {text[:80]!r}"
                continue
            report.answered += 1
            record = {"class_name": request.class_name, "sample_index": request.sample_index,
                      "model": settings.model, "host": settings.host, "answer": text,
                      "finish_reason": finish, "prompt_tokens": tokens[0],
                      "completion_tokens": tokens[1],
                      "answered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            try:
                cache.put(request.key, record)
            except OSError as error:  # the first answer that cannot be kept stops the asking
                stop.set()
                raise Unstorable(f"cannot store an answer in the answer cache {cache.path} "
                                 f"({error.strerror or error})") from error
            reason = ""
            break
    if reason:
        report.failures[request.key] = reason
    if progress is not None:
        progress.update(1)


def _content(response) -> tuple[str | None, str | None]:
    """(answer text, finish_reason); text None when the response has no usable shape."""
    try:
        choice = response.choices[0]
        content = choice.message.content
    except (AttributeError, IndexError, TypeError):
        return None, None
    if content is None:
        content = ""
    return (content if isinstance(content, str) else None), getattr(choice, "finish_reason", None)


def descriptions_table(requests: list[Request], template: PromptTemplate,
                       cache: AnswerCache) -> pd.DataFrame:
    """The descriptions of every answered request, numbered per class (`sample_index`)."""
    rows, count = [], {}
    for request in requests:
        record = cache.get(request.key)
        if record is None:
            continue
        truncated = record.get("finish_reason") == "length"
        for text in template.descriptions(request.class_name, record["answer"], truncated):
            index = count.get(request.class_id, 0)
            count[request.class_id] = index + 1
            rows.append((request.class_id, request.class_name, text, "llm", template.name, index))
    return pd.DataFrame(rows, columns=DESCRIPTION_COLUMNS)
