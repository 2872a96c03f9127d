"""Prometheus metrics of the server (prometheus-client): request counts by route and status,
latency histograms by route, and the number of images per forward pass by model. Each app has
its own registry, so several apps (tests) do not share counters."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# Seconds: one small-model sample takes milliseconds, a large upscale seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("ganforge_requests", "HTTP requests by route and status code",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("ganforge_request_latency_seconds", "request latency by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("ganforge_batch_images", "images per forward pass by model (a recording counts as one)",
                               ["model"], buckets=BATCH_BUCKETS, registry=self.registry)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def observe_batch(self, model: str, images: int) -> None:
        self.batch.labels(model=model).observe(images)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
