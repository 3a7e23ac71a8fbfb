-- Plain PostgreSQL: detections range-partitioned by time, rollups kept in the write transaction.
CREATE TABLE utopia.detections (
    geographical_location_oid bigint NOT NULL,
    video_camera_oid bigint NOT NULL,
    detection_oid bigint NOT NULL,
    item_name text NOT NULL,
    timestamp_detected timestamptz NOT NULL,
    geographical_location text,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    -- The unique key (detection_oid, timestamp_detected), time first: inserts land at the right
    -- edge of the index and the same index serves time ranges and keyset pagination.
    CONSTRAINT detections_key UNIQUE (timestamp_detected, detection_oid)
) PARTITION BY RANGE (timestamp_detected);

-- Catches rows outside the partitions created so far (very late or future-dated events):
-- nothing is ever refused. Maintenance moves them when it creates their partition.
CREATE TABLE utopia.detections_default PARTITION OF utopia.detections DEFAULT;

CREATE INDEX detections_camera_idx ON utopia.detections (video_camera_oid, timestamp_detected);
-- Dedup warm-up reads the ids ingested within the last horizon.
CREATE INDEX detections_ingested_brin ON utopia.detections USING brin (ingested_at);

-- Increments per (minute, location, camera, item) appended by every write transaction, one row
-- per batch holding columns as arrays (a single small insert keeps the write path close to a bare
-- COPY); folded into the rollup tables by maintenance. The views below add them, so reads are
-- always exact whether or not the fold has run.
CREATE TABLE utopia.rollup_pending (
    minute_ms int8[] NOT NULL,
    geographical_location_oids int8[] NOT NULL,
    video_camera_oids int8[] NOT NULL,
    item_names text[] NOT NULL,
    counts int8[] NOT NULL
);

-- Out of line but uncompressed: pglz on every write costs more than the space it saves here.
ALTER TABLE utopia.rollup_pending
    ALTER COLUMN minute_ms SET STORAGE EXTERNAL,
    ALTER COLUMN geographical_location_oids SET STORAGE EXTERNAL,
    ALTER COLUMN video_camera_oids SET STORAGE EXTERNAL,
    ALTER COLUMN item_names SET STORAGE EXTERNAL,
    ALTER COLUMN counts SET STORAGE EXTERNAL;

CREATE VIEW utopia.rollup_pending_rows AS
    SELECT 'epoch'::timestamptz + u.m * INTERVAL '1 millisecond' AS bucket,
           u.l AS geographical_location_oid, u.c AS video_camera_oid, u.i AS item_name, u.n AS n
    FROM utopia.rollup_pending p
    CROSS JOIN LATERAL unnest(p.minute_ms, p.geographical_location_oids, p.video_camera_oids, p.item_names, p.counts)
        AS u(m, l, c, i, n);

CREATE TABLE utopia.rollup_minute (
    bucket timestamptz NOT NULL,
    geographical_location_oid bigint NOT NULL,
    video_camera_oid bigint NOT NULL,
    item_name text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (bucket, geographical_location_oid, video_camera_oid, item_name)
);

CREATE TABLE utopia.rollup_hour (
    bucket timestamptz NOT NULL,
    geographical_location_oid bigint NOT NULL,
    video_camera_oid bigint NOT NULL,
    item_name text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (bucket, geographical_location_oid, video_camera_oid, item_name)
);

-- Without the camera, for analytics by location and item (top items, time series): far fewer
-- rows to read, and a day level so a week-long range reads little.
CREATE TABLE utopia.rollup_item_minute (
    bucket timestamptz NOT NULL,
    geographical_location_oid bigint NOT NULL,
    item_name text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (bucket, geographical_location_oid, item_name)
);
CREATE TABLE utopia.rollup_item_hour (LIKE utopia.rollup_item_minute INCLUDING ALL);
CREATE TABLE utopia.rollup_item_day (LIKE utopia.rollup_item_minute INCLUDING ALL);

-- Same names and columns as the TimescaleDB continuous aggregates; buckets are UTC.
CREATE VIEW utopia.detections_minute AS
    SELECT bucket, geographical_location_oid, video_camera_oid, item_name, n FROM utopia.rollup_minute
    UNION ALL
    SELECT bucket, geographical_location_oid, video_camera_oid, item_name, n FROM utopia.rollup_pending_rows;

CREATE VIEW utopia.detections_hour AS
    SELECT bucket, geographical_location_oid, video_camera_oid, item_name, n FROM utopia.rollup_hour
    UNION ALL
    SELECT date_trunc('hour', bucket, 'UTC'), geographical_location_oid, video_camera_oid, item_name, n
    FROM utopia.rollup_pending_rows;

CREATE VIEW utopia.detections_item_minute AS
    SELECT bucket, geographical_location_oid, item_name, n FROM utopia.rollup_item_minute
    UNION ALL
    SELECT bucket, geographical_location_oid, item_name, n FROM utopia.rollup_pending_rows;

CREATE VIEW utopia.detections_item_hour AS
    SELECT bucket, geographical_location_oid, item_name, n FROM utopia.rollup_item_hour
    UNION ALL
    SELECT date_trunc('hour', bucket, 'UTC'), geographical_location_oid, item_name, n
    FROM utopia.rollup_pending_rows;

CREATE VIEW utopia.detections_item_day AS
    SELECT bucket, geographical_location_oid, item_name, n FROM utopia.rollup_item_day
    UNION ALL
    SELECT date_trunc('day', bucket, 'UTC'), geographical_location_oid, item_name, n
    FROM utopia.rollup_pending_rows;
