#!/usr/bin/env python3
"""The SDK check: the official `anthropic` Python SDK against `engine upstream`.

Starts `engine upstream` (the local model API) on loopback and points the SDK at it with
`base_url`. A real user's client must work unchanged against our server, so each check
uses the SDK's ordinary calls and judges what the SDK hands back:

- a plain `messages.create` gets a well-formed message whose text is the echo;
- a streamed `messages.stream` gets every text delta in order, its final message equal
  to the plain answer, and the SDK's own event objects (message_start ... message_stop);
- a raw `stream=True` iteration sees the event kinds in the API's order;
- `models.list` lists the server's models;
- a tool loop as the SDK runs one: a streamed answer asking for a tool (its input
  streamed as JSON pieces) comes out of the SDK's accumulator as a `tool_use` block with
  the parsed input; the tool's result sent back (and a base64 document beside it) gets
  the final text answer;
- a wrong key raises the SDK's `AuthenticationError`, an unknown model its
  `NotFoundError`, both with the API's error type;
- `engine serve` started with a wrong key finds it with its start-up test call and exits
  2 with a message, instead of starting and failing every session.

Usage: test_model_api.py --engine PATH --worker PATH
"""

import argparse
import os
import subprocess
import sys
import tempfile

import anthropic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_channel import SECRET, START_BOUND, TestFailure, Upstream, UPSTREAM_KEY, log  # noqa: E402

MODEL = "local-echo-1"
TEXT = "Streaming, through the official SDK: every delta once, in order. " * 4


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def plain(client):
    message = client.messages.create(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": TEXT}]
    )
    check(message.type == "message" and message.role == "assistant", f"not a message: {message}")
    check(message.model == MODEL, f"model {message.model!r}")
    check(message.stop_reason == "end_turn", f"stop_reason {message.stop_reason!r}")
    text = "".join(b.text for b in message.content if b.type == "text")
    check(text == TEXT, f"echo differs: {text!r}")
    check(message.usage.input_tokens > 0 and message.usage.output_tokens > 0, f"usage {message.usage}")
    log(f"plain: {len(text)} chars, usage {message.usage.input_tokens}/{message.usage.output_tokens}")
    return message


def streamed(client, whole):
    deltas = []
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": TEXT}]
    ) as stream:
        for text in stream.text_stream:
            deltas.append(text)
        final = stream.get_final_message()
    check(len(deltas) > 1, f"the answer came in {len(deltas)} delta(s), not streamed")
    check("".join(deltas) == TEXT, "the deltas, joined, are not the echo (lost, repeated or reordered)")
    final_text = "".join(b.text for b in final.content if b.type == "text")
    check(final_text == whole.content[0].text, "the final streamed message differs from the plain answer")
    check(final.stop_reason == "end_turn", f"streamed stop_reason {final.stop_reason!r}")
    check(final.usage.output_tokens == whole.usage.output_tokens, f"streamed usage {final.usage}")
    log(f"stream: {len(deltas)} deltas, joined equal to the plain answer")


def raw_events(client):
    kinds = []
    for event in client.messages.create(
        model=MODEL, max_tokens=256, stream=True, messages=[{"role": "user", "content": "one two three"}]
    ):
        kinds.append(event.type)
    check(kinds[0] == "message_start" and kinds[-1] == "message_stop", f"event order {kinds}")
    for kind in ["content_block_start", "content_block_delta", "content_block_stop", "message_delta"]:
        check(kind in kinds, f"no {kind} in {kinds}")
    check(kinds.index("content_block_start") < kinds.index("content_block_delta")
          < kinds.index("content_block_stop") < kinds.index("message_delta"), f"event order {kinds}")
    log(f"raw stream: {len(kinds)} events in the API's order")


def models(client):
    ids = [m.id for m in client.models.list()]
    check(MODEL in ids, f"{MODEL} not in the model list {ids}")
    log(f"models: {ids}")


def errors(base_url):
    wrong = anthropic.Anthropic(api_key="not-the-key", base_url=base_url, max_retries=0)
    try:
        wrong.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}])
        raise TestFailure("a wrong key was served")
    except anthropic.AuthenticationError as e:
        check(e.status_code == 401 and e.body["error"]["type"] == "authentication_error", f"401 body {e.body}")
    right = anthropic.Anthropic(api_key=UPSTREAM_KEY, base_url=base_url, max_retries=0)
    try:
        right.messages.create(model="no-such-model", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
        raise TestFailure("an unknown model was served")
    except anthropic.NotFoundError as e:
        check(e.body["error"]["type"] == "not_found_error", f"404 body {e.body}")
    log("errors: wrong key -> AuthenticationError, unknown model -> NotFoundError")


TOOLS = [{
    "name": "read",
    "description": "Reads what its input names",
    "input_schema": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]},
}]


def tool_loop(client):
    asked = [{"role": "user", "content": "use:read*1 the forecast for Tuesday"}]
    with client.messages.stream(model=MODEL, max_tokens=256, messages=asked, tools=TOOLS) as stream:
        first = stream.get_final_message()
    check(first.stop_reason == "tool_use", f"stop_reason {first.stop_reason!r}")
    uses = [b for b in first.content if b.type == "tool_use"]
    check(len(uses) == 1 and uses[0].name == "read", f"tool uses {first.content}")
    check(uses[0].input == {"input": "the forecast for Tuesday"}, f"tool input {uses[0].input!r}")
    result = {"type": "tool_result", "tool_use_id": uses[0].id, "content": [
        {"type": "text", "text": "rain, then sun"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}},
    ]}
    turns = asked + [{"role": "assistant", "content": first.content},
                     {"role": "user", "content": [result]}]
    final = client.messages.create(model=MODEL, max_tokens=256, messages=turns, tools=TOOLS)
    text = "".join(b.text for b in final.content if b.type == "text")
    check(final.stop_reason == "end_turn", f"final stop_reason {final.stop_reason!r}")
    check(text.startswith("rain, then sun"), f"the final answer is not the tool's result: {text!r}")
    log(f"tool loop: tool_use {uses[0].id} streamed and parsed, final {text!r}")


def serve_with_a_wrong_key(engine, worker, addr, tmp):
    env = dict(os.environ, ENGINE_TOKEN_SECRET=SECRET, ENGINE_UPSTREAM_KEY="not-the-key")
    command = [engine, "serve", "--port", "0", "--data-dir", os.path.join(tmp, "wrong-key"),
               "--worker-bin", worker, "--upstream", addr]
    r = subprocess.run(command, env=env, capture_output=True, text=True, timeout=START_BOUND)
    check(r.returncode == 2, f"serve with a wrong upstream key exited {r.returncode}, not 2:\n{r.stderr[-2000:]}")
    check("refused the engine's API key" in r.stderr and "panicked" not in r.stderr,
          f"serve with a wrong upstream key: no clear message:\n{r.stderr[-2000:]}")
    log("serve with a wrong key: exit 2, " + r.stderr.strip().splitlines()[-1][:120])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", required=True)
    parser.add_argument("--worker", required=True)
    args = parser.parse_args()
    log(f"anthropic SDK {anthropic.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        upstream = Upstream(args.engine, tmp)
        try:
            addr = upstream.wait_listening()
            base_url = f"http://{addr}"
            client = anthropic.Anthropic(api_key=UPSTREAM_KEY, base_url=base_url, max_retries=0)
            whole = plain(client)
            streamed(client, whole)
            raw_events(client)
            models(client)
            tool_loop(client)
            errors(base_url)
            serve_with_a_wrong_key(args.engine, args.worker, addr, tmp)
        except TestFailure as e:
            print(f"FAIL: {e}\nupstream log:\n{upstream.log_tail()}", file=sys.stderr)
            sys.exit(1)
        finally:
            upstream.stop()
    log("sdk check: passed")


if __name__ == "__main__":
    main()
