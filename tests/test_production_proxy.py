"""Behind Tor every witness arrives from 127.0.0.1, so a per-client budget would count
the whole service as one client. With TESTIMONY_TRUSTED_PROXIES=1 the nginx of
docs/deploy passes Tor's circuit id in X-Forwarded-For and budgets count circuits;
without it the header is ignored (a client cannot pick its own key)."""

from __future__ import annotations

from .intake_helpers import submit

CIRCUIT_A = "fc00:dead:beef:4dad::0:1a2b"
CIRCUIT_B = "fc00:dead:beef:4dad::0:3c4d"


def _lookups(client, circuit: str, count: int) -> list[int]:
    return [
        client.post(
            "/en/receipt/",
            data={"receipt": "0000 0000 0000 0000 %04d" % n},
            headers={"X-Forwarded-For": circuit},
        ).status_code
        for n in range(count)
    ]


def _app(instance, proxies: int):
    from intake import create_app

    settings, _identity = instance
    app = create_app(settings.with_changes(trusted_proxies=proxies))
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    return app


def test_each_tor_circuit_has_its_own_budget_behind_the_proxy(instance):
    app = _app(instance, 1)
    try:
        client = app.test_client()
        assert _lookups(client, CIRCUIT_A, 21) == [404] * 20 + [429]
        assert _lookups(client, CIRCUIT_B, 1) == [404]  # another circuit is not held up
        assert submit(client, headers={"X-Forwarded-For": CIRCUIT_B}).status_code == 200
    finally:
        app.extensions["testimony_db"].dispose()


def test_without_a_trusted_proxy_the_header_is_ignored(instance):
    app = _app(instance, 0)
    try:
        client = app.test_client()
        assert _lookups(client, CIRCUIT_A, 21) == [404] * 20 + [429]
        assert _lookups(client, CIRCUIT_B, 1) == [429]  # the same client: 127.0.0.1
    finally:
        app.extensions["testimony_db"].dispose()
