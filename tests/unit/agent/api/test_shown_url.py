"""Hook URLs as the logs show them: a receiver's key in the query or a password never appears."""

from __future__ import annotations

from agent.api.webhooks import shown_url


def test_the_query_and_the_password_stay_out_of_the_logs() -> None:
    shown = shown_url("https://billing:s3cret-pass@hooks.example:8443/ev/start?key=0123456789ab")
    assert "s3cret-pass" not in shown and "0123456789ab" not in shown
    assert shown == "https://billing@hooks.example:8443/ev/start?…"


def test_a_plain_url_is_shown_as_it_is() -> None:
    assert shown_url("http://127.0.0.1:9000/hook") == "http://127.0.0.1:9000/hook"
