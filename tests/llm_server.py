"""A real HTTP server on 127.0.0.1 speaking OpenAI's `POST /v1/chat/completions`, scripted per
class: each class name maps to the behaviours of its successive calls (then "ok" for ever).

Behaviours: ok | 429 (with Retry-After: 1) | 500 | 401 (OpenAI's refusal, quoting the key's end) |
403 (a project without access) | 404 (an unknown model) | hang (answers after `hang_seconds`, past
the client's timeout) | malformed (invalid JSON body) | empty | cut (an answer stopped by
max_tokens, finish_reason "length"). A CBD-style question gets a "- " list answer, any other a
prose answer. `revoke_after`: every call after that many is refused (401) whatever the script, as
when a key is revoked mid-run.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedLLM:
    def __init__(self, script: dict[str, list[str]] | None = None, hang_seconds: float = 3.0,
                 delay: float = 0.0, revoke_after: int | None = None):
        self.script = {name: list(steps) for name, steps in (script or {}).items()}
        self.hang_seconds, self.delay, self.revoke_after = hang_seconds, delay, revoke_after
        self.calls: list[dict] = []  # class_name, behaviour, authorization
        self.count: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls_for(self, class_name: str) -> int:
        return sum(1 for c in self.calls if c["class_name"] == class_name)

    def _next(self, class_name: str) -> tuple[str, int]:
        with self.lock:
            n = self.count[class_name]
            self.count[class_name] += 1
            if self.revoke_after is not None and sum(self.count.values()) > self.revoke_after:
                return "401", n
            steps = self.script.get(class_name, [])
            return (steps[n] if n < len(steps) else "ok"), n

    def _handler(self):
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                user = body["messages"][-1]["content"]
                found = re.findall(r"distinguishing a (.+?) in a photo\?", user)
                class_name = found[-1] if found else user
                behaviour, n = llm._next(class_name)
                with llm.lock:
                    llm.calls.append({"class_name": class_name, "behaviour": behaviour,
                                      "authorization": self.headers.get("Authorization")})
                time.sleep(llm.delay)
                if behaviour == "429":
                    return self._send(429, {"error": {"message": "rate limited"}},
                                      {"Retry-After": "1"})
                if behaviour == "500":
                    return self._send(500, {"error": {"message": "boom"}})
                if behaviour == "401":
                    key = (self.headers.get("Authorization") or "")[-4:]
                    return self._send(401, {"error": {
                        "message": f"Incorrect API key provided: sk-test-***{key}.",
                        "type": "invalid_request_error", "code": "invalid_api_key"}})
                if behaviour == "403":
                    return self._send(403, {"error": {
                        "message": "Project does not have access to this model.",
                        "type": "invalid_request_error", "code": "model_not_found"}})
                if behaviour == "404":
                    return self._send(404, {"error": {
                        "message": f"The model `{body['model']}` does not exist or you do not "
                                   "have access to it.",
                        "type": "invalid_request_error", "code": "model_not_found"}})
                if behaviour == "hang":
                    time.sleep(llm.hang_seconds)
                if behaviour == "malformed":
                    return self._send_raw(200, b'{"id": "x", "choices": [{"mess')
                finish = "stop"
                if behaviour == "empty":
                    content = ""
                elif behaviour == "cut":
                    content, finish = f"The {class_name} is small. It has a long, slightly curv", "length"
                elif found:  # CBD prompt: continue the "- " list
                    content = (f" small bird number {n}\n- {class_name.lower()} colouring\n"
                               "- a short, conical bill\n\nThese features help identify it.")
                else:
                    content = (f"The {class_name} is a small bird, sample {n}. It has a short, "
                               "conical bill and streaked brown wings.")
                return self._send(200, {
                    "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": finish,
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 15, "total_tokens": 35}})

            def _send(self, status, payload, headers=None):
                self._send_raw(status, json.dumps(payload).encode(), headers)

            def _send_raw(self, status, data, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        return Handler
