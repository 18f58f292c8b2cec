"""Reading a process's Prometheus /metrics: samples, deltas, and histogram quantiles."""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    """Every sample of http://host:port/metrics, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; the sum over series when labels leave some open."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def delta(after: Samples, before: Samples) -> Samples:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def quantile(samples: Samples, histogram: str, q: float, **labels: str) -> float:
    """histogram_quantile(q) over the histogram's buckets (summed over unnamed labels),
    interpolating linearly inside a bucket, as Prometheus does. NaN when empty."""
    buckets: dict[float, float] = {}
    wanted = set(labels.items())
    for (name, ls), v in samples.items():
        if name == histogram + "_bucket" and wanted <= set(ls):
            le = float(dict(ls)["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return math.nan
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return bounds[-1]


def rates(after: Samples, before: Samples, seconds: float, names: Mapping[str, str]) -> dict:
    """{key: (value(after) - value(before)) / seconds} for each key -> metric name."""
    d = delta(after, before)
    return {key: value(d, name) / seconds for key, name in names.items()}
