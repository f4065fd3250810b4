"""The business-time histogram follows the configured targets."""

from __future__ import annotations

from prometheus_client import REGISTRY

from engine.config import load_config
from engine.metrics import business_time_histogram, target_buckets
from tests.helpers import EXAMPLE_CONFIG


def bucket_bounds() -> list[str]:
    family = next(m for m in REGISTRY.collect() if m.name == "sla_business_time_used_seconds")
    return [s.labels["le"] for s in family.samples if s.name.endswith("_bucket")]


def test_the_histogram_is_registered_once_per_set_of_targets() -> None:
    example = target_buckets(load_config(EXAMPLE_CONFIG))
    assert 900.0 in example  # ØKF's 15-minute P1 response, among others
    first = business_time_histogram(example)
    assert business_time_histogram(list(reversed(example))) is first  # the same set
    other = business_time_histogram([20.0, 60.0])  # a configuration with other targets
    assert other is not first
    other.labels("response", "sla").observe(30)
    assert bucket_bounds() == ["20.0", "60.0", "+Inf"]  # the old one is gone
    assert business_time_histogram(example) is not other  # back, for the other tests
