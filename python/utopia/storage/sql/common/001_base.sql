-- Shared by both flavours: Dataset B and the consumer progress written with each batch.
CREATE SCHEMA IF NOT EXISTS utopia;

CREATE TABLE utopia.locations (
    geographical_location_oid bigint PRIMARY KEY CHECK (geographical_location_oid > 0),
    geographical_location text NOT NULL CHECK (char_length(geographical_location) BETWEEN 1 AND 500),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per ingest consumer, updated in the same transaction as the rows it wrote.
CREATE TABLE utopia.consumer_progress (
    consumer text PRIMARY KEY,
    stream_seq bigint NOT NULL DEFAULT 0,
    batches bigint NOT NULL DEFAULT 0,
    received bigint NOT NULL DEFAULT 0,
    stored bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0,
    unmatched bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
