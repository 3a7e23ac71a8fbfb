"""Prometheus metrics of one ingest worker, on a registry of its own (no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
SIZE_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "utopia_ingest_events",
            "Events by outcome: received, accepted, duplicate, rejected, unmatched (accepted without a known "
            "location), stored (new rows committed), conflict (already stored, skipped)",
            ["outcome"],
            registry=r,
        )
        self.batch_events = Histogram(
            "utopia_ingest_batch_events", "Events per processed batch", buckets=SIZE_BUCKETS, registry=r
        )
        self.commit_seconds = Histogram(
            "utopia_ingest_commit_seconds",
            "Database write + commit time per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.publish_to_commit_seconds = Histogram(
            "utopia_ingest_publish_to_commit_seconds",
            "From JetStream's publish timestamp of each message to the commit of its rows",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.detection_age_seconds = Histogram(
            "utopia_ingest_detection_age_seconds",
            "From timestamp_detected of the newest event of a batch to its commit",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.write_retries = Counter(
            "utopia_ingest_write_retries", "Database writes retried after a failure", registry=r
        )
        self.database_up = Gauge("utopia_ingest_database_up", "1 while database writes succeed", registry=r)
        self.consumer_pending = Gauge(
            "utopia_ingest_consumer_pending",
            "Messages of a partition this worker owns not yet delivered to its consumer",
            ["partition"],
            registry=r,
        )
        self.consumer_ack_pending = Gauge(
            "utopia_ingest_consumer_ack_pending",
            "Messages of a partition this worker owns delivered but not yet acknowledged",
            ["partition"],
            registry=r,
        )
        self.partition_stops = Counter(
            "utopia_ingest_partition_stops",
            "Partitions this worker stopped working, by reason: handed (rebalance, lease lost, shutdown), "
            "fenced (another worker claimed it first), stalled (no progress, handed on), error",
            ["reason"],
            registry=r,
        )
        self.partitions_owned = Gauge(
            "utopia_ingest_partitions_owned", "Partitions of the DETECTIONS stream this worker works", registry=r
        )
        self.seen_ids = Gauge("utopia_ingest_seen_ids", "detection_oids in the dedup seen-set", registry=r)
        self.seen_bytes = Gauge("utopia_ingest_seen_bytes", "Memory held by the dedup seen-set", registry=r)
        self.locations = Gauge("utopia_ingest_locations", "Locations in the join table", registry=r)
