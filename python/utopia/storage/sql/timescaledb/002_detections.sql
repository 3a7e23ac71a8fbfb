-- TimescaleDB: detections is a hypertable; rollups are continuous aggregates (minute, then hour
-- on top of it) with real-time aggregation. Policies (chunk width, compression, retention,
-- refresh) depend on settings and are applied by `utopia migrate` after the versioned files.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE utopia.detections (
    geographical_location_oid bigint NOT NULL,
    video_camera_oid bigint NOT NULL,
    detection_oid bigint NOT NULL,
    item_name text NOT NULL,
    timestamp_detected timestamptz NOT NULL,
    geographical_location text,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    -- The unique key (detection_oid, timestamp_detected), time first (see the plain flavour).
    CONSTRAINT detections_key UNIQUE (timestamp_detected, detection_oid)
);

SELECT create_hypertable(
    'utopia.detections', 'timestamp_detected',
    chunk_time_interval => INTERVAL '1 day', create_default_indexes => false
);

CREATE INDEX detections_camera_idx ON utopia.detections (video_camera_oid, timestamp_detected);
CREATE INDEX detections_ingested_brin ON utopia.detections USING brin (ingested_at);

CREATE MATERIALIZED VIEW utopia.detections_minute
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 minute', timestamp_detected) AS bucket,
           geographical_location_oid, video_camera_oid, item_name, count(*) AS n
    FROM utopia.detections
    GROUP BY 1, 2, 3, 4
    WITH NO DATA;

CREATE MATERIALIZED VIEW utopia.detections_hour
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
           geographical_location_oid, video_camera_oid, item_name, sum(n)::bigint AS n
    FROM utopia.detections_minute
    GROUP BY 1, 2, 3, 4
    WITH NO DATA;

-- Without the camera, for analytics by location and item (see the plain flavour).
CREATE MATERIALIZED VIEW utopia.detections_item_minute
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 minute', bucket) AS bucket,
           geographical_location_oid, item_name, sum(n)::bigint AS n
    FROM utopia.detections_minute
    GROUP BY 1, 2, 3
    WITH NO DATA;

CREATE MATERIALIZED VIEW utopia.detections_item_hour
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
           geographical_location_oid, item_name, sum(n)::bigint AS n
    FROM utopia.detections_item_minute
    GROUP BY 1, 2, 3
    WITH NO DATA;

CREATE MATERIALIZED VIEW utopia.detections_item_day
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
           geographical_location_oid, item_name, sum(n)::bigint AS n
    FROM utopia.detections_item_hour
    GROUP BY 1, 2, 3
    WITH NO DATA;
