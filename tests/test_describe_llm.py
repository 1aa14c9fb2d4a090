"""The LLM backend against a real HTTP server on 127.0.0.1, through the real `openai` client:
answers, retries, failures, the cache, kill-and-resume, and the key never written anywhere."""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO
from llm_server import ScriptedLLM
from typer.testing import CliRunner

from pipeline.common import write_parquet
from pipeline.describe.llm import PRICES
from stages.cli import app

SECRET = "sk-test-NEVER-WRITE-ME-0123456789"
BIRDS = ["Alpha Finch", "Beta Warbler", "Gamma Tern", "Least Flycatcher", "Black-footed Albatross"]


def shipped(name):
    """A describe.openai setting as the repo's params.yaml ships it."""
    return yaml.safe_load((REPO / "params.yaml").read_text())["describe"]["openai"][name]


def setup(tmp_path, classes, base_url, **openai):
    write_parquet(tmp_path / "index" / "target_classes.parquet", pd.DataFrame(
        {"class_id": range(1, len(classes) + 1), "class_dir": classes, "class_name": classes}))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    # set "d" writes <out>/d.parquet: --out is the test's folder
    params["describe"].update(sets={"d": {"backend": "openai", "prompt": "paper"}},
                              controls={}, samples_per_class=2)
    params["train_adapter"]["descriptions"] = "d"
    params["zeroshot"]["descriptions"] = []
    params["describe"]["openai"].update(
        {"base_url": base_url, "concurrency": 4, "timeout": 2.0, "max_retries": 2,
         "parse_retries": 2, **openai})
    return write_params(tmp_path, params)


def write_params(tmp_path, params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path / "params.yaml"


def describe(tmp_path, *extra):
    return CliRunner().invoke(app, [
        "describe", "--index", str(tmp_path / "index"), "--out", str(tmp_path),
        "--cache", str(tmp_path / "cache" / "answers.jsonl"),
        "--params", str(tmp_path / "params.yaml"), *extra])


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def assert_secret_not_written(root) -> list[str]:
    """Scan every file under `root` as its reader sees it and return their names: a Parquet
    table cell by cell with its schema and metadata (compressed pages can hide a key from a byte
    scan), JSON and JSONL decoded (an escaped key reads the same), every other file as bytes."""
    scanned = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            text = parquet_text(path)
        else:
            data = path.read_bytes()
            assert SECRET.encode() not in data, path
            text = data.decode(errors="replace")
            if path.suffix in (".json", ".jsonl"):
                text += "\n" + json_text(text, lines=path.suffix == ".jsonl")
        assert SECRET not in text, path
        scanned.append(path.relative_to(root).as_posix())
    return scanned


def parquet_text(path) -> str:
    """Every column name, cell and schema or file metadata entry of a Parquet table, as text."""
    table = pq.read_table(path)
    metadata = {**(table.schema.metadata or {}), **(pq.read_metadata(path).metadata or {})}
    cells = [value for row in table.to_pylist() for value in row.values()]
    entries = [as_text(key) + as_text(value) for key, value in metadata.items()]
    schema = table.schema.to_string(truncate_metadata=False, show_field_metadata=True)
    return "\n".join([schema, *map(as_text, cells), *entries])


def json_text(text: str, lines: bool) -> str:
    """The decoded values of a JSON document, or of each line of a JSONL file (a line cut short
    is skipped: the byte scan has read it)."""
    values = []
    for document in text.splitlines() if lines else [text]:
        try:
            values.append(json.dumps(json.loads(document), ensure_ascii=False))
        except ValueError:
            continue
    return "\n".join(values)


def as_text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def test_the_leak_scan_finds_a_key_wherever_a_reader_would(tmp_path):
    """The scan itself: it must not pass for want of looking."""
    write_parquet(tmp_path / "clean" / "t.parquet", pd.DataFrame({"text": ["a"]}), {"note": "x"})
    (tmp_path / "clean" / "a.jsonl").write_text('{"answer": "fine"}\n')
    assert assert_secret_not_written(tmp_path / "clean") == ["a.jsonl", "t.parquet"]
    write_parquet(tmp_path / "cell" / "t.parquet", pd.DataFrame({"text": ["a", SECRET]}))
    write_parquet(tmp_path / "meta" / "t.parquet", pd.DataFrame({"t": [1]}), {"k": SECRET})
    (tmp_path / "escaped").mkdir()  # JSON may escape any character: "\u0073k-test-..."
    escaped = json.dumps({"answer": SECRET}).replace("sk-", "\\u0073k-")
    (tmp_path / "escaped" / "a.jsonl").write_text(escaped + "\n")
    assert SECRET not in escaped
    for leak in ("cell", "meta", "escaped"):
        with pytest.raises(AssertionError):
            assert_secret_not_written(tmp_path / leak)


def test_answers_become_descriptions_and_a_rerun_asks_nothing(tmp_path):
    with ScriptedLLM() as llm:
        setup(tmp_path, ["Alpha Finch", "Beta Warbler"], llm.base_url)
        result = describe(tmp_path)
        assert result.exit_code == 0, result.output
        assert len(llm.calls) == 4  # 2 classes x 2 samples
        assert {c["authorization"] for c in llm.calls} == {f"Bearer {SECRET}"}
        table = pd.read_parquet(tmp_path / "d.parquet")
        assert len(table) == 8  # two sentences an answer
        alpha = table[table["class_name"] == "Alpha Finch"]
        assert alpha["sample_index"].tolist() == [0, 1, 2, 3]
        assert sorted(alpha["text"]) == [  # two answers (the server numbers its calls)
            "It has a short, conical bill and streaked brown wings."] * 2 + [
            "The Alpha Finch is a small bird, sample 0.", "The Alpha Finch is a small bird, sample 1."]
        assert set(table["source"]) == {"llm"} and set(table["prompt_id"]) == {"paper"}
        assert "80 prompt + 60 completion tokens used" in result.output

        again = describe(tmp_path)
        assert again.exit_code == 0, again.output
        assert len(llm.calls) == 4  # zero requests on a rerun
        assert "4 answered in" in again.output and "; 0 request(s) to make" in again.output
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "d.parquet"), table)
    scanned = assert_secret_not_written(tmp_path)
    assert {"d.parquet", "cache/answers.jsonl", "params.yaml"} <= set(scanned)  # all looked at
    assert SECRET not in result.output + again.output


def one_sample(tmp_path):
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["describe"]["samples_per_class"] = 1
    write_params(tmp_path, params)


def test_transient_failures_are_retried_by_the_client(tmp_path):
    script = {"Error Bird": ["500"], "Slow Bird": ["hang"], "Garbled Bird": ["malformed"],
              "Quiet Bird": ["empty"], "Cut Bird": ["cut"]}
    with ScriptedLLM(script, hang_seconds=5) as llm:
        setup(tmp_path, list(script), llm.base_url, concurrency=5)
        one_sample(tmp_path)
        result = describe(tmp_path)
        assert result.exit_code == 0, result.output
        assert {name: llm.calls_for(name) for name in script} == {
            "Error Bird": 2, "Slow Bird": 2, "Garbled Bird": 2, "Quiet Bird": 2, "Cut Bird": 1}
    table = pd.read_parquet(tmp_path / "d.parquet")
    assert sorted(table["class_name"].unique()) == sorted(script)
    assert (table["text"].str.len() > 0).all()
    # an answer stopped by max_tokens keeps its whole sentences and drops the fragment
    assert table[table["class_name"] == "Cut Bird"]["text"].tolist() == ["The Cut Bird is small."]


def test_rate_limits_wait_as_retry_after_says(tmp_path):
    with ScriptedLLM({"Rate Bird": ["429"]}) as llm:
        setup(tmp_path, ["Rate Bird"], llm.base_url)
        one_sample(tmp_path)
        start = time.monotonic()
        result = describe(tmp_path)
        assert result.exit_code == 0, result.output
        assert llm.calls_for("Rate Bird") == 2
        assert time.monotonic() - start >= 1.0  # Retry-After: 1, not the client's 0.5 s backoff


def test_a_refused_key_stops_at_once_and_is_not_printed(tmp_path):
    concurrency = shipped("concurrency")
    assert concurrency > 1  # with one in flight, "one request" would prove nothing
    classes = [f"Bird {i}" for i in range(40)]
    with ScriptedLLM(revoke_after=0) as llm:  # every request refused
        setup(tmp_path, classes, llm.base_url, concurrency=concurrency)
        result = describe(tmp_path)
        assert result.exit_code == 2, result.output
        assert "HTTP 401: the API key was refused" in result.output
        assert len(llm.calls) == 1  # of 80: not one a class, nor one a request in flight
        assert llm.calls[0]["authorization"] == f"Bearer {SECRET}"  # refused, it was sent
    assert SECRET not in result.output and SECRET[-4:] not in result.output  # OpenAI quotes it
    assert_secret_not_written(tmp_path)


@pytest.mark.parametrize("status, says", [("403", "Project does not have access"),
                                          ("404", "The model `gpt-3.5-turbo` does not exist")])
def test_a_forbidden_or_unknown_model_stops_at_once(tmp_path, status, says):
    classes = [f"Bird {i}" for i in range(40)]
    with ScriptedLLM({name: [status] * 3 for name in classes}) as llm:
        setup(tmp_path, classes, llm.base_url, concurrency=shipped("concurrency"))
        result = describe(tmp_path)
        assert result.exit_code == 2, result.output
        assert f"HTTP {status}" in result.output and says in result.output
        assert len(llm.calls) == 1


def test_a_key_revoked_mid_run_stops_without_waiting_for_requests_in_flight(tmp_path):
    concurrency = shipped("concurrency")
    classes = [f"Bird {i}" for i in range(40)]
    # The first request, asked alone, is answered. Of the `concurrency` sent next, all but the
    # last to arrive hang (well within the timeout), and that last one finds the key revoked.
    with ScriptedLLM({name: ["hang"] for name in classes[1:]}, hang_seconds=30,
                     revoke_after=concurrency) as llm:
        setup(tmp_path, classes, llm.base_url, concurrency=concurrency, timeout=60.0)
        one_sample(tmp_path)
        start = time.monotonic()
        result = describe(tmp_path)
        elapsed = time.monotonic() - start
        assert result.exit_code == 2, result.output
        assert "HTTP 401: the API key was refused" in result.output
        assert len(llm.calls) == 1 + concurrency  # of 40: none sent after the refusal
        assert elapsed < 10  # the requests in flight were dropped, not waited for (30 s)
    cached = (tmp_path / "cache" / "answers.jsonl").read_text().splitlines()
    assert [json.loads(line)["class_name"] for line in cached] == ["Bird 0"]  # kept, paid for
    assert not (tmp_path / "d.parquet").exists()


def test_base_url_from_the_environment_is_the_one_asked_and_cached(tmp_path, monkeypatch):
    with ScriptedLLM() as llm:
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        setup(tmp_path, ["Alpha Finch"], None)
        result = describe(tmp_path)
        assert result.exit_code == 0, result.output
        assert len(llm.calls) == 2
    hosts = {json.loads(line)["host"]
             for line in (tmp_path / "cache" / "answers.jsonl").read_text().splitlines()}
    assert hosts == {llm.base_url.split("/")[2]}  # never filed under api.openai.com


def test_the_key_is_not_sent_in_clear_text_across_a_network():
    from pipeline.describe.llm import LLMSettings, make_client

    assert make_client(LLMSettings(base_url="http://10.1.2.3:8000/v1"), SECRET).api_key == "unused"
    assert make_client(LLMSettings(base_url="https://llm.lab.org/v1"), SECRET).api_key == SECRET
    assert make_client(LLMSettings(base_url="http://localhost:8000/v1"), SECRET).api_key == SECRET
    assert make_client(LLMSettings(base_url=None), SECRET).api_key == SECRET


def test_a_class_without_usable_answers_is_reported_and_nothing_written(tmp_path):
    with ScriptedLLM({"Mute Bird": ["empty", "empty", "empty"]}) as llm:
        setup(tmp_path, ["Mute Bird", "Loud Bird"], llm.base_url, concurrency=1)
        one_sample(tmp_path)
        result = describe(tmp_path)
        assert result.exit_code == 1
        assert "Mute Bird (sample 0): empty answer" in result.output
        assert not (tmp_path / "d.parquet").exists()
        assert llm.calls_for("Mute Bird") == 3  # asked, then asked again twice
        retry = describe(tmp_path)  # the server now answers: only the failed request is asked
        assert retry.exit_code == 0, retry.output
        assert (llm.calls_for("Mute Bird"), llm.calls_for("Loud Bird")) == (4, 1)


def test_switching_prompts_asks_only_what_changed(tmp_path):
    with ScriptedLLM() as llm:
        params_path = setup(tmp_path, ["Alpha Finch", "Beta Warbler"], llm.base_url)
        assert describe(tmp_path).exit_code == 0
        params = yaml.safe_load(params_path.read_text())
        params["describe"]["sets"]["d"]["prompt"] = "cbd"
        write_params(tmp_path, params)
        result = describe(tmp_path)
        assert result.exit_code == 0, result.output
        assert len(llm.calls) == 8
        table = pd.read_parquet(tmp_path / "d.parquet")
        alpha = table[table["class_name"] == "Alpha Finch"]["text"].tolist()
        # the answer's unbulleted first line is an item; the trailing sentence is not
        assert sorted(alpha) == [  # CBD's rule: "alpha ..." starts with "a", so "which is"
            "Alpha Finch, which has small bird number 2",
            "Alpha Finch, which has small bird number 3",
            "Alpha Finch, which is a short, conical bill",
            "Alpha Finch, which is a short, conical bill",
            "Alpha Finch, which is alpha finch colouring",
            "Alpha Finch, which is alpha finch colouring"]
        params["describe"]["sets"]["d"]["prompt"] = "paper"
        write_params(tmp_path, params)
        prompts = tmp_path / "prompts"
        shutil.copytree(REPO / "prompts" / "describe", prompts)
        with (prompts / "cbd_domain.yaml").open("a") as unused:
            unused.write("# an unused prompt edited\n")
        assert describe(tmp_path, "--prompts", str(prompts)).exit_code == 0
        assert len(llm.calls) == 8
        (prompts / "paper.yaml").write_text((prompts / "paper.yaml").read_text().replace(
            'user: "{class_name}"', 'user: "Describe a {class_name}."'))
        assert describe(tmp_path, "--prompts", str(prompts)).exit_code == 0
        assert len(llm.calls) == 12  # the edited prompt file is asked again


def test_killed_run_resumes_without_asking_again(tmp_path):
    classes = [f"Bird {i}" for i in range(8)]
    with ScriptedLLM(delay=0.3) as llm:
        setup(tmp_path, classes, llm.base_url, concurrency=1)
        command = [sys.executable, "-c", "from stages.cli import main; main()", "describe",
                   "--index", str(tmp_path / "index"), "--out", str(tmp_path),
                   "--cache", str(tmp_path / "cache" / "answers.jsonl"),
                   "--params", str(tmp_path / "params.yaml")]
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=dict(os.environ))
        cache = tmp_path / "cache" / "answers.jsonl"
        deadline = time.time() + 60
        while not (cache.exists() and len(cache.read_text().splitlines()) >= 3):
            assert time.time() < deadline and process.poll() is None
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(0.5)  # a request in flight at the kill reaches the server's count
        answered = len([line for line in cache.read_text().splitlines() if line.strip()])
        asked_before = len(llm.calls)
        assert 3 <= answered < 16 and not (tmp_path / "d.parquet").exists()
        result = describe(tmp_path)
        assert result.exit_code == 0, result.output
        assert len(llm.calls) - asked_before == 16 - answered
    assert len(pd.read_parquet(tmp_path / "d.parquet")) == 16 * 2


def expected_estimate(params: dict, classes: list[str]) -> tuple[int, int, int]:
    """(requests, prompt tokens, completion tokens) by llm.py's documented rule, worked out here
    from the prompt texts: about 4 characters a token, 4 more a message and 3 a request;
    completions counted at max_tokens."""
    describe, settings = params["describe"], params["describe"]["openai"]
    prompt = yaml.safe_load((REPO / "prompts" / "describe" /
                             f"{describe['sets']['d']['prompt']}.yaml").read_text())
    per_class = [sum(math.ceil(len(text) / 4) + 4
                     for text in (prompt["system"], prompt["user"].replace("{class_name}", name))
                     if text) + 3 for name in classes]
    requests = len(classes) * describe["samples_per_class"]
    return (requests, describe["samples_per_class"] * sum(per_class),
            requests * settings["max_tokens"])


def test_dry_run_estimates_before_spending(tmp_path, monkeypatch):
    classes = [f"{name} {i}" for i in range(10) for name in BIRDS]  # 50, of varied lengths
    with ScriptedLLM() as llm:  # a local server: no price, and every request it gets is seen
        params = yaml.safe_load(setup(tmp_path, classes, llm.base_url).read_text())
        result = describe(tmp_path, "--dry-run")
        assert result.exit_code == 0, result.output
        assert llm.calls == []
    requests, prompt_tokens, completion_tokens = expected_estimate(params, classes)
    assert (requests, completion_tokens) == (100, 100 * 256)
    figures = (f"{requests} request(s) to make to gpt-3.5-turbo: about {prompt_tokens:,} prompt "
               f"+ at most {completion_tokens:,} completion tokens, ")
    assert figures + "cost unknown (no price for 'gpt-3.5-turbo'" in result.output

    connections = []  # the real endpoint: any connection attempt is recorded and refused

    def refuse(sock, address):
        connections.append(address)
        raise OSError("a dry run connects to nothing")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    setup(tmp_path, classes, None)
    result = describe(tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert connections == []
    prompt_price, completion_price = PRICES["gpt-3.5-turbo"]  # USD per million tokens
    assert 0 < prompt_price < completion_price  # a zeroed or swapped table would not do
    cost = (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1e6
    assert figures + f"at most ${cost:.4f} (before any retries)" in result.output
    assert not (tmp_path / "d.parquet").exists()
    assert not (tmp_path / "cache" / "answers.jsonl").exists()


def test_missing_key_for_the_real_endpoint_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    setup(tmp_path, ["Alpha Finch"], None)
    result = describe(tmp_path)
    assert result.exit_code == 2
    assert "OPENAI_API_KEY environment variable" in result.output


def test_cache_survives_a_line_cut_short(tmp_path):
    from pipeline.describe.answer_cache import AnswerCache

    cache = AnswerCache(tmp_path / "a.jsonl")
    cache.put("k1", {"answer": "one"})
    with open(tmp_path / "a.jsonl", "a") as f:
        f.write('{"key": "k2", "answ')  # killed mid-write
    reopened = AnswerCache(tmp_path / "a.jsonl")
    assert reopened.damaged_lines == 1 and "k1" in reopened and "k2" not in reopened
    reopened.put("k3", {"answer": "three"})
    assert set(AnswerCache(tmp_path / "a.jsonl").records) == {"k1", "k3"}
    assert json.loads((tmp_path / "a.jsonl").read_text().splitlines()[-1])["answer"] == "three"


def test_an_unreachable_server_stops_the_run_in_seconds_and_names_it(tmp_path):
    """Nothing listens at base_url: the first request (retried once, not max_retries times)
    fails to connect and the run stops, naming the host, instead of every request waiting
    through its retries."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    setup(tmp_path, [f"Bird {i}" for i in range(20)], f"http://127.0.0.1:{port}/v1",
          max_retries=5, concurrency=2)
    started = time.monotonic()
    result = describe(tmp_path)
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert f"error: cannot reach the server 127.0.0.1:{port} (http://127.0.0.1:{port}/v1)" in result.output
    assert "ConnectError" in result.output or "Connect" in result.output
    assert elapsed < 10, elapsed
    assert not (tmp_path / "d.parquet").exists()


def test_a_long_failure_list_says_how_many_it_left_out(tmp_path):
    classes = [f"Mute Bird {i}" for i in range(55)]
    with ScriptedLLM({name: ["empty"] for name in classes}) as llm:
        setup(tmp_path, classes, llm.base_url, parse_retries=0)
        one_sample(tmp_path)
        result = describe(tmp_path)
    assert result.exit_code == 1
    assert "error: 55 request(s) got no usable answer:" in result.output
    assert result.output.count("): empty answer") == 50
    assert "... and 5 more (the first 50 are listed)" in result.output


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_an_answer_that_cannot_be_stored_stops_the_asking_at_once(tmp_path):
    """The answer cache on a full disk (Linux's /dev/full: every write fails with ENOSPC, for
    real): the first answer that cannot be kept stops the run in one line naming the cache,
    before a second request is paid for, and nothing is written. With room again, the rerun
    asks for everything (nothing was stored) and succeeds."""
    classes = [f"Bird {i}" for i in range(20)]
    cache = tmp_path / "cache" / "answers.jsonl"
    cache.parent.mkdir()
    cache.symlink_to("/dev/full")
    with ScriptedLLM() as llm:
        setup(tmp_path, classes, llm.base_url, concurrency=shipped("concurrency"))
        result = describe(tmp_path)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert lines == [f"error: cannot store an answer in the answer cache {cache} (No space "
                         "left on device): nothing more was asked; make room there (or name "
                         "another cache: --cache, $FGVC_CACHE_DIR) and rerun: the 0 answers "
                         "stored are not asked again"], result.output
        assert "Traceback" not in result.output
        assert len(llm.calls) == 1  # of 40: the first answer could not be kept
        assert not (tmp_path / "d.parquet").exists()
        cache.unlink()
        rerun = describe(tmp_path)
        assert rerun.exit_code == 0, rerun.output
        assert len(llm.calls) == 1 + 40


def test_a_second_run_on_the_same_answer_cache_stops_in_one_line_before_asking(tmp_path):
    """One writer at a time: while another process holds the cache (here this test, with the
    lock the stage takes), describe asks nothing and says who holds it; once it is free, the
    same command runs."""
    import fcntl

    cache = tmp_path / "cache" / "answers.jsonl"
    cache.parent.mkdir()
    with ScriptedLLM() as llm:
        setup(tmp_path, ["Alpha Finch", "Beta Warbler"], llm.base_url)
        with open(f"{cache}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            held = subprocess.run(
                [sys.executable, "-c", "from stages.cli import main; main()", "describe",
                 "--index", str(tmp_path / "index"), "--out", str(tmp_path), "--cache",
                 str(cache), "--params", str(tmp_path / "params.yaml")],
                cwd=REPO, capture_output=True, text=True,
                env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert held.returncode == 1, held.stderr
        assert held.stderr.strip().splitlines()[-1] == (
            f"error: the answer cache {cache} is in use by another describe run (it holds "
            f"{cache}.lock): wait for it to finish (its answers are then not asked again), or "
            "name another cache (--cache, $FGVC_CACHE_DIR)")
        assert llm.calls == [] and not (tmp_path / "d.parquet").exists()
        result = describe(tmp_path)  # the lock released: the same command runs
        assert result.exit_code == 0, result.output
        assert len(llm.calls) == 4


def test_the_descriptions_table_says_which_model_and_server_wrote_it(tmp_path):
    from pipeline.common import read_parquet_with_metadata

    with ScriptedLLM() as llm:
        setup(tmp_path, ["Alpha Finch"], llm.base_url, temperature=0.3)
        result = describe(tmp_path)
        assert result.exit_code == 0, result.output
        host = llm.base_url.split("//")[1].split("/")[0]
    _, metadata = read_parquet_with_metadata(tmp_path / "d.parquet")
    made = json.loads(metadata["fgvc.made_by"])
    assert {k: made[k] for k in ("backend", "prompt", "model", "server", "temperature",
                                 "samples_per_class")} == {
        "backend": "openai", "prompt": "prompt paper", "model": shipped("model"),
        "server": host, "temperature": 0.3, "samples_per_class": 2}


def test_the_server_is_named_by_host_and_port_never_with_the_credentials_of_its_url():
    """A base URL may carry `user:password@`: the host written into the answer cache, the
    descriptions table's metadata and the report keeps only host:port."""
    from pipeline.describe.settings import Describe, LLMSettings, server_address

    url = "http://alice:s3cr%40t@llm.lab.org:8443/v1"
    assert LLMSettings(base_url=url).host == "llm.lab.org:8443"
    assert LLMSettings(base_url="http://[::1]:8000/v1").host == "[::1]:8000"
    assert LLMSettings(base_url="https://token@api.example.com/v1").host == "api.example.com"
    assert server_address("bob:pw@10.0.0.5:8000") == "10.0.0.5:8000"  # an old, long netloc
    describe = Describe(sets={"d": {"backend": "openai", "prompt": "cbd"}},
                        openai={"base_url": url}, controls={})
    made = json.dumps(describe.made_by("d"))
    assert '"server": "llm.lab.org:8443"' in made
    assert "alice" not in made and "s3cr" not in made
