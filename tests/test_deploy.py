"""The deployment recipe of docs/deploy.md, run on loopback (issue 15 part 6).

One `chroma run` server and one `redis-server` stand for the newsroom's shared services; two `assistant serve`
processes, each with its own data dir, stand for two machines; `serve --workers 2` is one machine with
uvicorn's supervisor. An article ingested through one server's admin API is answered by the other, the question
budget is one budget across both, and a server killed with SIGKILL under load leaves the other answering every
request; a killed worker of `--workers 2` is replaced by the supervisor.

Fictional article only (an invented town, outlet and people; an `.example` URL).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port, wait_for_port
from tests.support.paths import ROOT
from tests.support.redis import RedisServer, needs_redis
from tests.support.served import serve, server_env

ADMIN = "deploy-admin-token"
ARTICLE = {
    "title": "Ostrevin rehangs its quarry bells after forty silent years",
    "body": ("The six quarry bells of Ostrevin will ring again from the first Sunday of March, the town council "
             "decided on Tuesday. Bell-keeper Maren Tollis said the bells had been silent since the slate quarry "
             "closed forty years ago. \"The valley will hear the old peal at noon every Sunday,\" Tollis told "
             "the council. The bells were recast at the Hennick foundry for 84,000 crowns, paid from a "
             "residents' fund."),
    "source": "Ostrevin Lantern",
    "author": "Petra Vell",
    "published_at": "2026-11-24",
    "url": "https://ostrevin-lantern.example/town/quarry-bells",
}
QUESTION = "When will the Ostrevin quarry bells ring again?"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
METRICS = "deploy-metrics-token"
# deploy/assistant.toml's public name: the reverse proxy passes it on in Host (other names get 400)
PUBLIC_NAME = "assistant.newsroom.example"
_readers = iter(range(1, 1 << 20))
_readers_lock = threading.Lock()


def _ask(base: str, timeout: float = 120) -> httpx.Response:
    """One question from a reader of its own: a new loopback source address each time (127.1.x.y), so the
    per-IP question budget is never what a load test measures."""
    with _readers_lock:
        n = next(_readers)
    ip = f"127.1.{n >> 8 & 255}.{n & 255 or 1}"
    with _client(ip, timeout) as client:
        return client.post(f"{base}/api/ask", json={"question": QUESTION})


def _client(ip: str = "127.0.0.1", timeout: float = 120) -> httpx.Client:
    """A client from loopback address `ip` that names the server as the reverse proxy would."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=timeout,
                        headers={"Host": PUBLIC_NAME})


DEPLOY = ROOT / "deploy"


def _recipe_env(chroma: tuple[str, int], redis: str, ingest_host: bool, **extra: str) -> dict[str, str]:
    """docs/deploy.md's settings: the Chroma server and Redis everywhere, the admin token on the ingest host only."""
    host, port = chroma
    # the units' settings file; what differs here is what differs per site: the addresses (env wins over it)
    env = {"ASSISTANT_CONFIG": str(DEPLOY / "assistant.toml"), "ASSISTANT_STORE__HOST": host,
           "ASSISTANT_STORE__PORT": str(port), "ASSISTANT_SERVER__REDIS_URL": redis,
           "ASSISTANT_SERVER__METRICS_TOKEN": METRICS, **extra}
    if ingest_host:
        env["ASSISTANT_SERVER__ADMIN_TOKEN"] = ADMIN
    return server_env(**env)


def _answered_from_article(reply: dict) -> bool:
    return not reply["refused"] and any(c["url"] == ARTICLE["url"] for c in reply["citations"])


def _ingest(base: str) -> None:
    with _client() as client:
        r = client.post(f"{base}/api/articles", json=ARTICLE, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 1, r.json()


def _ask_until_answered(base: str, timeout: float = 60) -> dict:
    """Ask `base` until it answers from ARTICLE."""
    deadline = time.monotonic() + timeout
    asks = 0
    while True:
        r = _ask(base)
        asks += 1
        assert r.status_code == 200, r.text
        if _answered_from_article(r.json()):
            return {**r.json(), "asks": asks}
        assert time.monotonic() < deadline, f"{base} did not answer from the new article in {timeout}s: {r.json()}"
        time.sleep(0.25)


class Load:
    """Client threads asking `base` continuously (about 5 requests a second each), a new connection per request (as browsers behind a proxy
    would spread), each request recorded as (thread, started, ended, ok, detail)."""

    def __init__(self, base: str, threads: int):
        self.base = base
        self.records: list[tuple[int, float, float, bool, str]] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                r = _ask(self.base, 60)
                ok = r.status_code == 200 and _answered_from_article(r.json())
                detail = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as e:
                ok, detail = False, repr(e)
            with self._lock:
                self.records.append((i, started, time.monotonic(), ok, detail))
            # a steady stream, not a flood: on 2 cores a flood slows the workers being started under it;
            # a server that is gone refuses at once, so no busy loop either
            self.stop.wait(0.1)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(90)

    def wait(self, per_thread: int, after: float = 0.0, timeout: float = 120) -> None:
        """Until every thread finished `per_thread` requests that started after `after`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                done = [sum(1 for t, s, *_ in self.records if t == i and s > after) for i in range(len(self.threads))]
            if min(done) >= per_thread:
                return
            assert time.monotonic() < deadline, f"requests per thread after {after}: {done} (want {per_thread})"
            time.sleep(0.1)

    def failures(self, started_after: float = 0.0) -> list[tuple]:
        with self._lock:
            return [r for r in self.records if not r[3] and r[1] > started_after]


def _wait_gone(pid: int, timeout: float = 10) -> float:
    """The time by which process `pid` no longer runs (gone or a zombie)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return time.monotonic()
        if state in ("Z", "X"):
            return time.monotonic()
        assert time.monotonic() < deadline, f"process {pid} still runs after SIGKILL"
        time.sleep(0.05)


def _workers(parent: int) -> set[int]:
    """The uvicorn worker processes (multiprocessing spawn children) of `parent`, zombies excluded."""
    pids = set()
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline and state not in ("Z", "X"):
                pids.add(int(pid))
    return pids


def _cli(env: dict[str, str], *args: str) -> str:
    """Run `assistant ARGS` to completion; its stdout (it must exit 0)."""
    r = subprocess.run([sys.executable, "-m", "assistant", *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, (args, r.stdout[-1000:], r.stderr[-2000:])
    return r.stdout


def _asks_counted(base: str) -> int:
    """POST /api/ask answered 200, as the server's /metrics counts them."""
    from prometheus_client.parser import text_string_to_metric_families

    with _client() as client:
        r = client.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS}"})
    assert r.status_code == 200, r.text
    return int(sum(s.value for family in text_string_to_metric_families(r.text) for s in family.samples
                   if s.name == "assistant_http_requests_total" and s.labels.get("route") == "/api/ask"
                   and s.labels.get("method") == "POST" and s.labels.get("status") == "200"))


# -- two machines: two serve processes, own data dirs, one Chroma server and one Redis -----------------------

def test_two_servers_share_the_archive_the_budget_and_survive_each_other(chroma_server, redis, tmp_path):
    """A is the ingest host (the admin token), B a serve host (none), as in docs/deploy.md."""
    budget = 4
    limit = {"ASSISTANT_SERVER__RATE_LIMIT_PER_MINUTE": str(budget)}
    env_a = _recipe_env(chroma_server, redis.url, ingest_host=True, **limit)
    env_b = _recipe_env(chroma_server, redis.url, ingest_host=False, **limit)
    with serve(tmp_path / "host-a", tmp_path / "a.log", env_a) as server_a, \
            serve(tmp_path / "host-b", tmp_path / "b.log", env_b) as server_b:
        a, a_url, b_url = server_a.proc, server_a.url, server_b.url
        # 1. an article ingested through A's admin API is answered by B (another data dir: its keyword index
        # follows the Chroma server), within a bounded time; B itself takes no writes
        _ingest(a_url)
        reply = _ask_until_answered(b_url)
        assert any(c["source"] == ARTICLE["source"] for c in reply["citations"])
        _ask_until_answered(a_url)
        with _client("127.0.0.3") as client:
            r = client.post(f"{b_url}/api/articles", json=ARTICLE)
            assert r.status_code == 401 and "ASSISTANT_SERVER__ADMIN_TOKEN" in r.json()["hint"], r.text
            r = client.post(f"{b_url}/api/articles", json=ARTICLE, headers=AUTH)  # A's token means nothing here
            assert r.status_code == 401 and r.json()["error"] == "unknown token", r.text

        # 2. one question budget per client IP across both servers (Redis): `budget` questions in turns, then
        # the next one is refused by whichever server gets it, though each has seen only half the budget
        with _client("127.0.0.2") as client:
            statuses = [client.post(f"{(a_url, b_url)[i % 2]}/api/ask", json={"question": QUESTION}).status_code
                        for i in range(budget)]
            assert statuses == [200] * budget
            for base in (b_url, a_url):
                r = client.post(f"{base}/api/ask", json={"question": QUESTION})
                assert r.status_code == 429, (base, r.status_code, r.text)
                assert int(r.headers["Retry-After"]) >= 1
        # another reader's budget is their own
        assert _ask(b_url).status_code == 200

        # 3. the backup of docs/deploy.md, taken on the ingest host (A's data dir) while both serve, restored
        # into an empty store (another collection of the Chroma server) from another data dir: answerable there
        backup = tmp_path / "archive.jsonl.gz"
        _cli(env_a, "backup", "--data-dir", str(tmp_path / "host-a"), str(backup))
        restored = {**env_a, "ASSISTANT_STORE__COLLECTION": "restored"}
        out = _cli(restored, "restore", "--data-dir", str(tmp_path / "host-c"), str(backup))
        assert out.startswith("restored ") and "keyword index rebuilt" in out, out
        assert _answered_from_article(json.loads(_cli(restored, "ask", "--json", "--data-dir",
                                                      str(tmp_path / "host-c"), QUESTION)))

        # 4. kill -9 the ingest host A while readers ask both: B answers every request, before, during and after
        with Load(b_url, 3) as on_b, Load(a_url, 2) as on_a:
            on_b.wait(2)
            on_a.wait(1)
            a.send_signal(signal.SIGKILL)
            killed = _wait_gone(a.pid)
            on_b.wait(3, after=killed)
        assert a.wait(10) == -signal.SIGKILL
        assert not on_b.failures(), on_b.failures()[:3]
        assert len(on_b.records) >= 15
        # A's clients saw it go: every request that started after its death failed to connect
        late_a = [r for r in on_a.records if r[1] > killed]
        assert late_a and not any(ok for *_, ok, _ in late_a)


# -- one machine, `serve --workers 2`: uvicorn's supervisor ------------------------------------------------

def test_workers_share_one_port_a_killed_worker_is_replaced_and_sighup_rolls_them(chroma_server, redis, tmp_path):
    env = _recipe_env(chroma_server, redis.url, ingest_host=True)
    with serve(tmp_path / "host", tmp_path / "workers.log", env, "--workers", "2") as server:
        parent, base, text = server.proc, server.url, server.text()
        assert text.count("Serving the assistant on") == 1
        assert f"Serving the assistant on {base}/ (2 workers)" in text
        # printed once both workers finished their startup
        assert text.count("Application startup complete") == 2
        assert text.rindex("Application startup complete") < text.index("Serving the assistant")
        first = _workers(parent.pid)
        assert len(first) == 2, first

        _ingest(base)
        asked_before = _ask_until_answered(base)["asks"]

        with Load(base, 2) as load:
            load.wait(2)
            # kill one worker: the other keeps answering, the supervisor starts a replacement
            old1, old2 = sorted(first)
            sent = time.monotonic()
            os.kill(old1, signal.SIGKILL)
            killed = _wait_gone(old1)
            load.wait(2, after=killed)
            server.wait_for("Application startup complete", 180, count=3)
            second = _workers(parent.pid)
            assert old1 not in second and old2 in second and len(second) == 2, (first, second)
            # SIGHUP (the unit's `systemctl reload`): a rolling restart, each new worker ready before an old one
            # is stopped (SIGTERM: it finishes what it holds); afterwards no original worker is left, so what
            # answers is the supervisor's
            parent.send_signal(signal.SIGHUP)
            server.wait_for("Application startup complete", 240, count=5)
            deadline = time.monotonic() + 60
            while (third := _workers(parent.pid)) & second or len(third) != 2:
                assert time.monotonic() < deadline, (second, third)
                time.sleep(0.1)
            reloaded = time.monotonic()
            load.wait(2, after=reloaded)
        # A request can fail only when the worker that had accepted it was killed: each failure was in flight at
        # the kill (at most one per client thread); none started after the killed worker was gone, through the
        # replacement and the rolling restart.
        failures = load.failures()
        for thread, started, ended, _, detail in failures:
            assert started < killed and ended >= sent, (thread, started, ended, detail, (sent, killed))
        assert len(failures) <= len(load.threads), failures
        assert sum(1 for r in load.records if r[3] and r[1] > killed) >= 8
        assert parent.poll() is None
        # /metrics, answered by whichever worker takes it, sums every worker's counts, the stopped ones' too
        answered = sum(1 for r in load.records if r[3]) + asked_before
        counted = _asks_counted(base)
        assert answered <= counted <= answered + len(failures), (answered, counted, len(failures))
    assert "Child process" in server.text() and "died" in server.text()


@needs_redis
@pytest.mark.server
def test_a_replacement_worker_waits_out_a_redis_outage(chroma_server, tmp_path):
    """Redis goes away, then a worker dies: its replacement cannot be built (the rate-limit store is checked at
    startup) and is tried again every few seconds, while the other worker answers (its budgets fall back to
    this process); once Redis is back the replacement starts. The server never stops."""
    redis = RedisServer(free_port(), tmp_path).start()  # this test stops and restarts it
    env = _recipe_env(chroma_server, redis.url, ingest_host=True)
    try:
        with serve(tmp_path / "host", tmp_path / "workers.log", env, "--workers", "2") as server:
            parent, base = server.proc, server.url
            _ingest(base)
            _ask_until_answered(base)
            redis.stop()
            victim = min(_workers(parent.pid))
            os.kill(victim, signal.SIGKILL)
            _wait_gone(victim)
            server.wait_for("the rate-limit store", 120)  # the replacement's one line
            for _ in range(3):
                r = _ask(base)
                assert r.status_code == 200 and _answered_from_article(r.json()), r.text
            assert parent.poll() is None and server.text().count("Application startup complete") == 2
            redis = RedisServer(redis.port, tmp_path).start()
            server.wait_for("Application startup complete", 180, count=3)
            assert len(_workers(parent.pid)) == 2 and victim not in _workers(parent.pid)
            assert _ask(base).status_code == 200
    finally:
        redis.stop()


@pytest.mark.subprocess
def test_workers_need_a_chroma_server(tmp_path):
    r = subprocess.run([sys.executable, "-m", "assistant", "serve", "--workers", "2", "--data-dir", str(tmp_path),
                        "--port", str(free_port())], cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "--workers 2 needs a Chroma server" in lines[0] and "not safe across processes" in lines[0]
    assert "chroma run" in lines[0] and "ASSISTANT_STORE__HOST" in lines[0]
    assert not (tmp_path / "chroma").exists()  # nothing was opened


@pytest.mark.subprocess
def test_workers_on_a_taken_port_is_one_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        # the supervisor binds before any worker starts: no Chroma server needs to run for this
        r = subprocess.run([sys.executable, "-m", "assistant", "serve", "--workers", "2", "--data-dir", str(tmp_path),
                            "--port", str(port)], cwd=ROOT, env=server_env(ASSISTANT_STORE__HOST="127.0.0.1"),
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Serving" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0], r.stderr


# -- the files under deploy/ say what the tests above ran -------------------------------------------------

def _unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's `Key=value` lines (keys may repeat), comments and section headers dropped."""
    keys: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, sep, value = line.partition("=")
            assert sep, f"{name}: not a Key=value line: {line!r}"
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def test_deploy_units_run_commands_the_cli_has_with_valid_settings(tmp_path):
    import shlex

    from assistant.cli import cli
    from assistant.config import load_settings

    commands = {}
    for name in ("newsroom-serve.service", "newsroom-watch.service", "newsroom-backup.service"):
        unit = _unit(name)
        [exec_start] = unit["ExecStart"]
        argv = shlex.split(exec_start)
        if argv[:2] == ["/bin/sh", "-c"]:
            # exec assistant ... $(date ...): the shell's substitution stands for one word
            argv = shlex.split(re.sub(r"\$\([^)]*\)", "2026-12-01", argv[2].replace("%%", "%")))[1:]
        assert argv[0] == "/srv/newsroom/.venv/bin/assistant", exec_start
        # the command and its options exist (click parses them as the installed `assistant` would)
        ctx = cli.make_context("assistant", argv[1:], resilient_parsing=False)
        sub = cli.get_command(ctx, ctx.protected_args[0])
        assert sub is not None, exec_start
        sub_ctx = sub.make_context(ctx.protected_args[0], ctx.protected_args[1:] + ctx.args, parent=ctx)
        commands[ctx.protected_args[0]] = sub_ctx.params
        env = dict(v.split("=", 1) for v in unit["Environment"])
        assert env["ASSISTANT_CONFIG"] == "/etc/newsroom/assistant.toml" and env["ASSISTANT_DATA_DIR"]
        assert unit["User"] == ["newsroom"] and unit["EnvironmentFile"][0].lstrip("-") == "/etc/newsroom/secrets.env"
    assert commands["serve"]["workers"] > 1 and commands["serve"]["port"] == 7860
    # deploy/assistant.toml and the secrets file's variables are valid settings, with what the recipe needs
    secrets = dict(line.split("=", 1) for line in (DEPLOY / "secrets.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(secrets) <= {"ASSISTANT_SERVER__ADMIN_TOKEN", "ASSISTANT_SERVER__REDIS_URL",
                            "ASSISTANT_SERVER__METRICS_TOKEN"}, secrets
    settings = load_settings(DEPLOY / "assistant.toml", data_dir=str(tmp_path),
                             **{f"server.{k.split('__')[1].lower()}": v for k, v in secrets.items()})
    assert settings.store.host and settings.server.trusted_proxies and settings.server.allowed_hosts
    assert settings.sources
    chroma = shlex.split(_unit("newsroom-chroma.service")["ExecStart"][0])
    assert chroma[:2] == ["/srv/newsroom/.venv/bin/chroma", "run"]
    assert chroma[chroma.index("--host") + 1] == settings.store.host
    assert int(chroma[chroma.index("--port") + 1]) == settings.store.port


@pytest.mark.subprocess
def test_workers_with_an_unreachable_redis_stop_before_any_worker_starts(tmp_path):
    r = subprocess.run([sys.executable, "-m", "assistant", "serve", "--workers", "2", "--data-dir", str(tmp_path),
                        "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=server_env(ASSISTANT_STORE__HOST="127.0.0.1",
                                ASSISTANT_SERVER__REDIS_URL=f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"))
    assert r.returncode == 1 and "Serving" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "rate-limit store" in lines[0] and "server.redis_url" in lines[0], r.stderr
    assert "s3cret-pw" not in r.stderr


def test_a_stopping_server_answers_the_request_of_a_connection_it_just_accepted():
    """A rolling restart stops old workers while clients connect: a connection accepted just before the stop,
    whose request is read just after it, is answered, not closed unanswered (stock uvicorn closes it)."""
    import asyncio

    import uvicorn

    from assistant.web.server import _config

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"answered"})

    port = free_port()
    server = uvicorn.Server(_config(app, "warning", host="127.0.0.1", port=port, lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_for_port(port, 30)
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        deadline = time.monotonic() + 10
        while len(server.server_state.connections) < 1:  # accepted by the server, nothing sent yet
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.should_exit = True
        while any(s.is_serving() for s in server.servers):  # shutdown began: the connection was told to stop
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = b""
        while chunk := client.recv(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and b"answered" in reply, reply
    finally:
        client.close()
        thread.join(15)
    assert not thread.is_alive()
