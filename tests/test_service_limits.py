"""Rate limits through the `limits` library: a moving window per token and per IP, in memory per process, or
shared by every app instance through a real `redis-server` on a loopback port (issue 15, part 4)."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from assistant.config import load_settings
from assistant.errors import ConfigError
from assistant.web.api import create_app
from assistant.web.rate_limits import RateLimiter, rate_limit_storage
from assistant.web.security import fingerprint
from tests.support.net import free_port, serve_in_thread
from tests.support.redis import RedisServer, needs_redis, redis_command

ADMIN = "lim-admin-7c1e94"
WIDGET = "lim-widget-52ab0f"
WIKI = "http://wiki.example"
QUESTION = "What did Peskov say about BRICS?"
BUDGET = 3


def _settings(data_dir, **server):
    overrides = {"server.admin_token": ADMIN, "server.widget_tokens": {WIDGET: [WIKI]},
                 "server.rate_limit_per_minute": BUDGET}
    overrides.update({f"server.{k}": v for k, v in server.items()})
    return load_settings(data_dir=str(data_dir), **overrides)


def _ask(base: str, token: str = WIDGET) -> httpx.Response:
    return httpx.post(f"{base}/api/ask", json={"question": QUESTION},
                      headers={"X-Widget-Token": token, "Origin": WIKI}, timeout=60)


def _two_instances(corpus_assistant, corpus_data_dir, **server):
    """Two app instances (each its own access policy and limiter) on two loopback ports, one archive."""
    settings = _settings(corpus_data_dir, **server)
    return serve_in_thread(create_app(settings, corpus_assistant)), \
        serve_in_thread(create_app(settings, corpus_assistant))


def _spend_the_budget(a: str, b: str) -> None:
    """BUDGET (3) requests of one client across both instances: two questions and a failed authentication."""
    assert _ask(a).status_code == 200
    assert _ask(b).status_code == 200
    assert _ask(a, token="not-a-token").status_code == 401  # a wrong guess spends the IP's budget too


# ---- the limiter itself ----

def test_moving_window_counts_every_key_and_slides():
    limiter = RateLimiter(2, window=1)
    assert limiter.hit(["ip:a", "token:t"]) == 0
    assert limiter.hit(["ip:b", "token:t"]) == 0
    wait = limiter.hit(["ip:c", "token:t"])  # the token is spent
    assert 0 < wait <= 1
    assert limiter.spent(["token:t"]) > 0 and limiter.spent(["ip:c"]) == 0  # the refused hit counted nothing
    assert limiter.hit(["ip:c"]) == 0  # another IP without the token is not limited
    deadline = time.monotonic() + 5
    while limiter.spent(["token:t"]) > 0:  # the first hits leave the window
        assert time.monotonic() < deadline, "the window did not slide"
        time.sleep(0.05)
    assert limiter.hit(["ip:a", "token:t"]) == 0


def test_zero_means_no_limit():
    limiter = RateLimiter(0)
    assert all(limiter.hit(["ip:a"]) == 0 for _ in range(100))


# ---- per process (no redis_url) ----

def test_in_memory_limits_are_per_process(corpus_assistant, corpus_data_dir):
    one, two = _two_instances(corpus_assistant, corpus_data_dir)
    with one as a, two as b:
        _spend_the_budget(a, b)
        # a counted 2 (a question and the failed guess), b counted 1: each instance has its own budget.
        assert _ask(a).status_code == 200
        r = _ask(a)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert _ask(b).status_code == 200


# ---- shared through Redis ----

@needs_redis
def test_two_instances_share_one_budget_through_redis(corpus_assistant, corpus_data_dir, redis):
    one, two = _two_instances(corpus_assistant, corpus_data_dir, redis_url=redis.url)
    with one as a, two as b:
        _spend_the_budget(a, b)
        r = _ask(b)  # b itself answered only one, but the client has spent the budget across both
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60 and r.json()["error"]
        assert r.headers["access-control-allow-origin"] == WIKI
        # While the IP's budget is spent no token is compared, on either instance.
        r = httpx.get(f"{a}/api/articles", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 429 and "retry-after" in r.headers
    keys = redis_command(redis.port, "KEYS", "*")
    assert WIDGET.encode() not in keys and fingerprint(WIDGET).encode() in keys  # tokens are stored hashed
    assert b"127.0.0.1" in keys


@needs_redis
def test_admin_requests_spend_nothing_on_the_shared_budget(corpus_assistant, corpus_data_dir, redis):
    one, two = _two_instances(corpus_assistant, corpus_data_dir, redis_url=redis.url)
    with one as a, two as b:
        for base in (a, b, a, b):
            assert _ask(base, token=ADMIN).status_code == 200
        for base in (a, b, a):
            assert _ask(base).status_code == 200
        assert _ask(b).status_code == 429


@needs_redis
def test_an_unreachable_redis_stops_startup_with_a_clear_error(corpus_assistant, corpus_data_dir):
    port = free_port()  # nothing listens there
    settings = _settings(corpus_data_dir, redis_url=f"redis://:s3cret-pass@127.0.0.1:{port}/0")
    with pytest.raises(ConfigError) as e:
        create_app(settings, corpus_assistant)
    assert f"redis://127.0.0.1:{port}/0" in e.value.message and "unreachable" in e.value.message
    assert "s3cret-pass" not in str(e.value)  # a password in the URL is never shown
    assert "redis_url" in e.value.hint
    with pytest.raises(ConfigError):
        rate_limit_storage(settings.server)  # what `serve --workers N` can call before it starts workers


def test_redis_url_must_be_a_redis_url(tmp_path):
    with pytest.raises(ConfigError):
        load_settings(data_dir=str(tmp_path), **{"server.redis_url": "memcached://127.0.0.1:11211"})
    assert load_settings(data_dir=str(tmp_path), **{"server.redis_url": "  "}).server.redis_url is None


@needs_redis
@pytest.mark.server
def test_a_redis_outage_falls_back_to_per_process_limits(corpus_assistant, corpus_data_dir, tmp_path, caplog):
    server = RedisServer(free_port(), tmp_path).start()
    try:
        with serve_in_thread(create_app(_settings(corpus_data_dir, redis_url=server.url), corpus_assistant)) as a:
            assert _ask(a).status_code == 200  # counted in Redis
            server.stop()
            with caplog.at_level(logging.WARNING, logger="assistant.web.security"):
                # Answers go on, still limited: this process counts on its own while Redis is away.
                assert [_ask(a).status_code for _ in range(BUDGET + 1)] == [200] * BUDGET + [429]
            warnings = [r for r in caplog.records if "rate-limit store is unreachable" in r.getMessage()]
            assert len(warnings) == 1  # one warning, not one per request
    finally:
        server.stop()
