"""The engine's PostgreSQL connections carry its name, unless the URL names them."""

from engine.store.connection import server_settings


def test_the_engine_names_its_connections_by_role() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/sla_engine?sslmode=disable"
    assert server_settings(url, "pool") == {"application_name": "sla-engine pool"}


def test_a_name_in_the_url_is_kept() -> None:
    url = "postgresql://postgres@db/sla_engine?application_name=helpdesk-sla"
    assert server_settings(url, "pool") == {}
