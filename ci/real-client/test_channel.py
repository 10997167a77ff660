#!/usr/bin/env python3
"""The client channel against a real, independent WebSocket client.

Starts `engine upstream` (the local model API) and `engine serve` (real loopback TCP,
real worker processes, real time, every query sent to that model API first) on free
ports, mints a token with `engine token`, and talks to the gateway with Python's
`websockets` package, a client nobody on this project wrote:

  * bad command lines exit 2 with a message; a bad token is refused with HTTP 401;
  * `/ready` turns 200 once a worker is pre-warmed; `POST /sessions` creates a session;
  * a short query streams its words as deltas, then its result;
  * a long, paced query is cut off twice while its deltas are still arriving (once by
    dropping the TCP connection without a close frame, once by a clean close), and the
    client reconnects each time with `last_seq` = the highest sequence number it saw;
  * across all connections every sequenced message arrives exactly once, the numbers
    are gap-free, the deltas are the answer's words in order and the result arrives;
  * SIGTERM while a query streams drains the server: the query is interrupted, the
    session ends (`session_ended`), the server exits 0 and leaves no worker behind;
  * the model API was called for the queries, and stops cleanly on SIGTERM.

Usage: test_channel.py [--engine PATH] [--worker PATH]
  (or ENGINE_BIN / WORKER_BIN; default target/debug/engine and the worker beside it).
Exit status 0 when every check passed, 1 otherwise. Timeouts are liveness bounds only.
"""

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

# Liveness bounds (seconds): generous, never asserted as performance.
START_BOUND = 60
READY_BOUND = 60
MESSAGE_BOUND = 60
STOP_BOUND = 60

SECRET = "real-client-secret-of-32-bytes-at-least"
UPSTREAM_KEY = "real-client-api-key"
USER = "alice"
# The long answer: one delta per word, paced by the server (--answer-pace-ms).
LONG_WORDS = [f"w{i:03d}" for i in range(1, 151)]
PACE_MS = 40
# The model streams its answer (16 characters a delta) at this pace (`engine upstream
# --stream-pace-ms`), before the worker carries it out.
MODEL_PACE_MS = 30
# Deltas of the long query each connection reads before it is cut off: the first cut
# comes while the model's deltas stream, the second while the worker's do.
MODEL_CUT_AFTER = 10
CUT_AFTER = 15
# Before a cut the client stops reading for this long (the server keeps writing to a
# connection whose messages the client will never see), and after a drop it stays
# away this long (the server publishes while no connection is attached). Not a timing
# assertion: only makes the server run ahead, so the reconnect has something to replay.
STALL = 0.5
# Over the server's frame bound (4 bytes a character of its 100,000, plus the envelope).
OVERSIZED_BYTES = 600_000
# More opens than the per-address burst (30), so the limit is met.
RATE_TRIES_MAX = 80

CHECKS = []


def log(message):
    print(message, flush=True)


class TestFailure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise TestFailure(what)
    CHECKS.append(what)
    log(f"ok - {what}")


# An opener that ignores proxy variables: everything here is loopback.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, token=None):
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with HTTP.open(request, timeout=MESSAGE_BOUND) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Child:
    """An `engine` subcommand as a child process; stdout lines arrive on a queue."""

    def __init__(self, command, env, stderr_path, shown_env):
        self.stderr_path = stderr_path
        self.stderr = open(self.stderr_path, "w")
        log("$ " + " ".join(command) + f"   ({shown_env} set)")
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_listening(self):
        deadline = time.monotonic() + START_BOUND
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure(f"no 'listening on' line within {START_BOUND} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise TestFailure(
                    f"{self.proc.args[1]} exited ({self.proc.wait()}) before listening; log:\n{self.log_tail()}"
                )
            if line.startswith("listening on "):
                return line[len("listening on "):].strip()

    def stop(self, sig=signal.SIGTERM):
        """Signals the server and waits for it; returns its exit status (None: killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=STOP_BOUND)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def log_tail(self, lines=40):
        self.stderr.flush()
        with open(self.stderr_path) as f:
            return "".join(f.readlines()[-lines:])


class Upstream(Child):
    """`engine upstream`: the local model API (an echo model)."""

    def __init__(self, engine, tmp):
        env = dict(os.environ, ENGINE_UPSTREAM_KEY=UPSTREAM_KEY)
        command = [engine, "upstream", "--port", "0", "--stream-pace-ms", str(MODEL_PACE_MS)]
        super().__init__(command, env, os.path.join(tmp, "engine-upstream.log"), "ENGINE_UPSTREAM_KEY")


class Server(Child):
    """`engine serve`, sending each query to the model API at `upstream`."""

    def __init__(self, engine, worker, tmp, upstream):
        self.data_dir = os.path.join(tmp, "data")
        env = dict(os.environ, ENGINE_TOKEN_SECRET=SECRET, ENGINE_UPSTREAM_KEY=UPSTREAM_KEY)
        command = [
            engine, "serve",
            "--port", "0",
            "--data-dir", self.data_dir,
            "--worker-bin", worker,
            "--prewarm", "1",
            "--session-limit", "4",
            "--answer-pace-ms", str(PACE_MS),
            "--upstream", upstream,
        ]
        super().__init__(command, env, os.path.join(tmp, "engine-serve.log"),
                         "ENGINE_TOKEN_SECRET, ENGINE_UPSTREAM_KEY")


class Stream:
    """What the client saw of one session's stream, across connections: the oracle
    'every sequenced message exactly once, gap-free'."""

    def __init__(self):
        self.base = None
        self.by_seq = {}
        self.order = []
        self.violations = []

    @property
    def last_seq(self):
        return self.order[-1] if self.order else self.base

    def record(self, message):
        seq = message.get("seq")
        if seq is None:
            return
        if seq in self.by_seq:
            self.violations.append(f"seq {seq} delivered again: {message}")
        elif seq != self.last_seq + 1:
            self.violations.append(f"gap: seq {seq} after {self.last_seq}")
        self.by_seq[seq] = message
        self.order.append(seq)


class Client:
    """One WebSocket connection feeding a shared `Stream`."""

    def __init__(self, base_url, token, stream, session, last_seq=None):
        url = f"{base_url}/ws?token={token}"
        if session is not None:
            url += f"&session={session}"
        if last_seq is not None:
            url += f"&last_seq={last_seq}"
        # max_queue=None: the client buffers every incoming frame. With a bound, a client
        # that stops reading also stops reading the socket, and its close() then waits
        # out close_timeout for a Close it does not read (the client's flow control).
        self.ws = connect(url, open_timeout=MESSAGE_BOUND, proxy=None,
                          close_timeout=MESSAGE_BOUND, max_queue=None)
        self.stream = stream
        self.welcome = json.loads(self.ws.recv(timeout=MESSAGE_BOUND))
        if self.welcome.get("type") != "welcome":
            raise TestFailure(f"first message is not a welcome: {self.welcome}")
        if stream.base is None:
            stream.base = self.welcome["last_seq"]

    def next(self):
        """The next message (recorded in the stream)."""
        try:
            message = json.loads(self.ws.recv(timeout=MESSAGE_BOUND))
        except TimeoutError:
            raise TestFailure(f"no message within {MESSAGE_BOUND} s")
        self.stream.record(message)
        return message

    def send(self, frame):
        self.ws.send(json.dumps(frame))

    def until(self, done):
        """Messages until `done(message)` holds; returns them all."""
        seen = []
        while True:
            m = self.next()
            seen.append(m)
            if m.get("type") == "error":
                raise TestFailure(f"server error: {m}")
            if done(m):
                return seen

    def drop(self):
        """Loses the connection with no close frame (TCP reset), as a network would."""
        sock = self.ws.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.shutdown(socket.SHUT_RDWR)
        try:
            self.ws.close()
        except Exception:
            pass

    def close(self):
        self.ws.close()


def closed_with(ws):
    """Reads until the server closes `ws` (its close code is then on `ws`)."""
    try:
        while True:
            ws.recv(timeout=MESSAGE_BOUND)
    except ConnectionClosed:
        pass
    except TimeoutError:
        raise TestFailure(f"the server did not close the connection within {MESSAGE_BOUND} s")


def is_result(query):
    return lambda m: m.get("type") == "result" and m.get("query") == query


def deltas(stream, query, kind="delta"):
    return [stream.by_seq[s]["text"] for s in stream.order
            if stream.by_seq[s].get("type") == kind and stream.by_seq[s].get("query") == query]


def model_deltas(stream, query):
    """The model's streamed answer to `query` (`model_delta` messages), in order."""
    return deltas(stream, query, "model_delta")


def worker_processes_under(path):
    """Pids of live processes whose working directory is under `path` (Linux /proc)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == path or cwd.startswith(path + os.sep):
            found.append(int(pid))
    return found


def bad_command_lines(engine):
    env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_TOKEN_SECRET", "ENGINE_UPSTREAM_KEY")}
    for args, what in [
        (["serve"], "serve without a token secret"),
        (["serve", "--token-secret", "short"], "serve with a token secret under 32 bytes"),
        (["serve", "--token-secret", SECRET, "--port", "http"], "serve with a non-numeric port"),
        (["serve", "--token-secret", SECRET, "--session-limit", "0"], "serve with a zero session limit"),
        (["serve", "--token-secret", SECRET, "--idle-timeout-secs", "10"],
         "serve with an idle timeout under the first-message wait"),
        (["serve", "--token-secret", SECRET, "--worker-bin", "/nonexistent/worker"], "serve with a missing worker binary"),
        (["token", "--sub", "x"], "token without a secret"),
        (["upstream"], "upstream without an API key"),
        (["serve", "--token-secret", SECRET, "--upstream", "nowhere"], "serve with an upstream address without a port"),
        (["serve", "--token-secret", SECRET, "--upstream", "127.0.0.1:1"], "serve with an upstream but no key"),
    ]:
        r = subprocess.run([engine] + args, env=env, capture_output=True, text=True, timeout=START_BOUND)
        check(
            r.returncode == 2 and r.stderr.strip() and "panicked" not in r.stderr,
            f"{what}: exit 2 with a message ({r.stderr.strip().splitlines()[0] if r.stderr.strip() else 'no message'})",
        )


def scenario(engine, worker, tmp):
    bad_command_lines(engine)
    upstream = Upstream(engine, tmp)
    try:
        upstream_addr = upstream.wait_listening()
        check(upstream_addr.startswith("127.0.0.1:"), f"engine upstream is listening on {upstream_addr}")
        scenario_served(engine, worker, tmp, upstream_addr)
    except TestFailure:
        log("--- engine upstream log (tail) ---")
        log(upstream.log_tail())
        raise
    finally:
        code = upstream.stop(signal.SIGTERM)
    check(code == 0, f"SIGTERM: engine upstream exited 0 (got {code})")
    calls = [l for l in upstream.log_tail(1000).splitlines() if "stopped" in l and "calls=" in l]
    count = int(calls[-1].rsplit("calls=", 1)[1].split()[0]) if calls else 0
    check(count >= 3, f"the model API was called for the pre-warm and the queries ({count} calls)")


def scenario_served(engine, worker, tmp, upstream_addr):
    server = Server(engine, worker, tmp, upstream_addr)
    try:
        addr = server.wait_listening()
        check(addr.startswith("127.0.0.1:"), f"engine serve is listening on {addr}")
        base_http = f"http://{addr}"
        base_ws = f"ws://{addr}"

        token = subprocess.run(
            [engine, "token", "--sub", USER, "--role", "member", "--ttl-secs", "600", "--token-secret", SECRET],
            capture_output=True, text=True, timeout=START_BOUND, check=True,
        ).stdout.strip()
        check(token.count(".") == 2, "engine token printed a JWT")

        try:
            connect(f"{base_ws}/ws?token=not-a-token", open_timeout=MESSAGE_BOUND, proxy=None)
            raise TestFailure("a bad token was accepted")
        except InvalidStatus as e:
            check(e.response.status_code == 401, "a bad token is refused with HTTP 401")

        deadline = time.monotonic() + READY_BOUND
        while True:
            status, body = http("GET", f"{base_http}/ready")
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise TestFailure(f"/ready still {status} {body} after {READY_BOUND} s")
            time.sleep(0.2)
        check(True, "/ready answers 200 once a worker is pre-warmed")

        status, body = http("POST", f"{base_http}/sessions", token)
        check(status == 201, f"POST /sessions creates a session (HTTP {status} {body})")
        session = json.loads(body)["session_id"]

        stream = Stream()
        c = Client(base_ws, token, stream, session)
        check(
            c.welcome["session_id"] == session and c.welcome["resumed"] is False,
            f"welcome for {session} (server last_seq {c.welcome['last_seq']})",
        )

        # A short query: its words as deltas, then the result.
        c.send({"type": "query", "text": "hello real client"})
        c.until(is_result(1))
        result1 = stream.by_seq[stream.last_seq]
        check(deltas(stream, 1) == ["hello", "real", "client"], "query 1 streamed its words as deltas")
        check(result1["text"] == "hello real client" and result1["truncated"] is False, "query 1 result arrived")
        check("".join(model_deltas(stream, 1)) == "hello real client",
              "query 1: the model's answer streamed as model_delta messages before the result")
        c.send({"type": "ack", "seq": stream.last_seq, "v": 1})

        # A long, paced query, cut off twice mid-stream: first while the model's answer
        # streams, then while the worker's does.
        c.send({"type": "query", "text": " ".join(LONG_WORDS)})
        c.until(lambda m: len(model_deltas(stream, 2)) >= MODEL_CUT_AFTER)
        model_at_cut1 = len(model_deltas(stream, 2))
        cut1 = stream.last_seq
        time.sleep(STALL)
        c.drop()
        log(f"   stopped reading after seq {cut1}, then dropped the TCP connection (no close frame)")
        time.sleep(STALL)

        c = Client(base_ws, token, stream, session, last_seq=cut1)
        at_reconnect1 = c.welcome["last_seq"]
        check(c.welcome["resumed"] is True and at_reconnect1 == cut1,
              f"reconnect with last_seq={cut1} resumed right after it (welcome last_seq {at_reconnect1})")
        have = len(deltas(stream, 2))
        c.until(lambda m: len(deltas(stream, 2)) >= have + CUT_AFTER or is_result(2)(m))
        cut2 = stream.last_seq
        time.sleep(STALL)
        c.close()
        log(f"   stopped reading after seq {cut2}, then closed the connection cleanly")
        check(c.ws.close_code == 1000,
              f"the server answered the client's Close frame (close code {c.ws.close_code}; 1006: no Close came back)")

        c = Client(base_ws, token, stream, session, last_seq=cut2)
        at_reconnect2 = c.welcome["last_seq"]
        check(c.welcome["resumed"] is True and at_reconnect2 == cut2,
              f"reconnect with last_seq={cut2} resumed right after it (welcome last_seq {at_reconnect2})")
        c.until(is_result(2))
        result2_seq = stream.last_seq
        result2 = stream.by_seq[result2_seq]
        check(result2_seq > at_reconnect2,
              f"both cuts came while query 2 was still streaming (its result is seq {result2_seq}; "
              f"the client came back after {at_reconnect1} and {at_reconnect2})")

        check(not stream.violations, "every sequenced message arrived exactly once, gap-free"
              + (f": {stream.violations[:5]}" if stream.violations else ""))
        expected = list(range(stream.base + 1, stream.last_seq + 1))
        check(stream.order == expected,
              f"sequence numbers {stream.base + 1}..={stream.last_seq} are all there, in order")
        check(deltas(stream, 2) == LONG_WORDS,
              f"query 2's {len(LONG_WORDS)} deltas arrived once each, in order, across 3 connections")
        model2 = model_deltas(stream, 2)
        check(len(model2) > model_at_cut1 and "".join(model2) == " ".join(LONG_WORDS),
              f"query 2's model answer: {len(model2)} model deltas, the first cut after "
              f"{model_at_cut1} of them, arrived once each, in order, joined the whole answer")
        check(result2["text"] == " ".join(LONG_WORDS) and result2["truncated"] is False
              and result2["bytes"] == len(" ".join(LONG_WORDS)), "query 2's final result arrived")

        # The session still works on the last connection.
        c.send({"type": "query", "text": "still here"})
        c.until(is_result(3))
        check(deltas(stream, 3) == ["still", "here"] and not stream.violations,
              "a query after the reconnects streams and completes")
        c.close()

        # A frame over the server's size bound: refused with close code 1009 and a reason.
        big = Client(base_ws, token, stream, session, last_seq=stream.last_seq)
        big.ws.send("x" * OVERSIZED_BYTES)
        closed_with(big.ws)
        check(big.ws.close_code == 1009,
              f"a {OVERSIZED_BYTES}-byte frame is refused with close code 1009 "
              f"(got {big.ws.close_code} {big.ws.close_reason!r})")

        # A reconnect to a session that does not exist: refused with close code 1008
        # until this address's rate limit is spent, then HTTP 429 with Retry-After.
        refused = []
        limited = None
        for _ in range(RATE_TRIES_MAX):
            try:
                ws = connect(f"{base_ws}/ws?token={token}&session=s-missing&last_seq=1",
                             open_timeout=MESSAGE_BOUND, proxy=None)
            except InvalidStatus as e:
                limited = e.response
                break
            closed_with(ws)
            refused.append(ws.close_code)
        check(refused and set(refused) == {1008},
              f"{len(refused)} opens of a missing session refused with close code 1008 ({set(refused)})")
        check(limited is not None and limited.status_code == 429
              and int(limited.headers.get("Retry-After", "0")) >= 1,
              "past the per-address limit, HTTP 429 with Retry-After "
              f"({limited.status_code if limited else None}, "
              f"Retry-After {limited.headers.get('Retry-After') if limited else None})")
        time.sleep(int(limited.headers.get("Retry-After", "2")) + 1)

        # Shutdown with a query streaming: a socket without `session` creates one.
        stream = Stream()
        c = Client(base_ws, token, stream, session=None)
        check(c.welcome["session_id"] != session, f"a socket without a session id opened {c.welcome['session_id']}")
        c.send({"type": "query", "text": " ".join(LONG_WORDS)})
        c.until(lambda m: len(deltas(stream, 1)) >= 3)
        server.proc.send_signal(signal.SIGTERM)
        log("   sent SIGTERM to engine serve while query 1 of the new session streams")
        ended = c.until(lambda m: m.get("type") == "session_ended")
        kinds = [m.get("type") for m in ended]
        check("interrupted" in kinds and not stream.violations,
              f"SIGTERM: the streaming query was interrupted and the session ended ({ended[-1]})")
        closed_with(c.ws)
        check(c.ws.close_code == 1001,
              f"SIGTERM: the server closed with 1001, going away (got {c.ws.close_code} "
              f"{c.ws.close_reason!r})")
    except BaseException:
        log("--- engine serve log (tail) ---")
        log(server.log_tail())
        server.stop(signal.SIGKILL)
        raise

    code = server.stop(signal.SIGTERM)
    check(code == 0, f"SIGTERM: engine serve drained and exited 0 (got {code})")
    log_text = server.log_tail(10_000)
    check("panicked" not in log_text, "no panic in the server's log")
    deadline = time.monotonic() + STOP_BOUND
    while worker_processes_under(server.data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = worker_processes_under(server.data_dir)
    check(not left, f"no worker process left behind ({left})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE_BIN", "target/debug/engine"))
    parser.add_argument("--worker", default=os.environ.get("WORKER_BIN"))
    args = parser.parse_args()
    engine = os.path.abspath(args.engine)
    worker = os.path.abspath(args.worker or os.path.join(os.path.dirname(engine), "worker"))
    for path in (engine, worker):
        if not os.access(path, os.X_OK):
            log(f"FAIL: {path} is not an executable: build it with "
                "`cargo build -p engine --bin engine --bin worker`")
            return 1
    import websockets
    log(f"real client: websockets {websockets.__version__}, engine {engine}")
    with tempfile.TemporaryDirectory(prefix="engine-real-client-") as tmp:
        try:
            scenario(engine, worker, tmp)
        except (TestFailure, ConnectionClosed, OSError, subprocess.SubprocessError) as e:
            log(f"FAIL: {type(e).__name__}: {e}")
            log(f"real-client: {len(CHECKS)} passed, 1 failed")
            return 1
    log(f"real-client: {len(CHECKS)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
