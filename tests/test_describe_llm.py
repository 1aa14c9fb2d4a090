"""The LLM backend against a real HTTP server on 127.0.0.1, through the real `openai` client:
answers, retries, failures, the cache, kill-and-resume, and the key never written anywhere."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO
from llm_server import ScriptedLLM
from typer.testing import CliRunner

from pipeline.common import write_parquet
from stages.cli import app

SECRET = "sk-test-NEVER-WRITE-ME-0123456789"


def setup(tmp_path, classes, base_url, **openai):
    write_parquet(pd.DataFrame({"class_id": range(1, len(classes) + 1), "class_dir": classes,
                                "class_name": classes}), tmp_path / "index" / "cub_classes.parquet")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["describe"].update(backend="openai", samples_per_class=2)
    params["describe"]["openai"].update(
        {"base_url": base_url, "concurrency": 4, "timeout": 2.0, "max_retries": 2,
         "parse_retries": 2, **openai})
    return write_params(tmp_path, params)


def write_params(tmp_path, params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path / "params.yaml"


def describe(tmp_path, *extra):
    return CliRunner().invoke(app, [
        "describe", "--index", str(tmp_path / "index"), "--out", str(tmp_path / "d.parquet"),
        "--cache", str(tmp_path / "cache" / "answers.jsonl"),
        "--params", str(tmp_path / "params.yaml"), *extra])


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


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
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(SECRET.encode() in p.read_bytes() for p in written)
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
    classes = [f"Bird {i}" for i in range(6)]
    with ScriptedLLM({name: ["401"] * 10 for name in classes}) as llm:
        setup(tmp_path, classes, llm.base_url, concurrency=1)
        result = describe(tmp_path)
        assert result.exit_code == 2
        assert "the API key was refused" in result.output
        assert len(llm.calls) == 1  # not one refused request per class
    assert SECRET[-4:] not in result.output


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
        params["describe"]["openai"]["prompt"] = "cbd"
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
        params["describe"]["openai"]["prompt"] = "paper"
        params["describe"]["prompts"]["cbd_domain"]["user"] += "\n"  # an unused prompt edited
        write_params(tmp_path, params)
        assert describe(tmp_path).exit_code == 0
        assert len(llm.calls) == 8


def test_killed_run_resumes_without_asking_again(tmp_path):
    classes = [f"Bird {i}" for i in range(8)]
    with ScriptedLLM(delay=0.3) as llm:
        setup(tmp_path, classes, llm.base_url, concurrency=1)
        command = [sys.executable, "-c", "from stages.cli import main; main()", "describe",
                   "--index", str(tmp_path / "index"), "--out", str(tmp_path / "d.parquet"),
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


def test_dry_run_estimates_before_spending(tmp_path, monkeypatch):
    setup(tmp_path, ["Alpha Finch", "Beta Warbler", "Gamma Tern"], None)  # the real endpoint
    result = describe(tmp_path, "--dry-run")  # makes no request, so no network is needed
    assert result.exit_code == 0, result.output
    assert "6 request(s) to make to gpt-3.5-turbo" in result.output
    assert "at most 1,536 completion tokens, at most $0.00" in result.output
    assert not (tmp_path / "d.parquet").exists()


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
