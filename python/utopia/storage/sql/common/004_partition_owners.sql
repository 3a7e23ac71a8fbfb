-- Partitioned ingest: which worker owns a consumer (partition), and the fencing epoch. A worker
-- that takes a partition over bumps the epoch before it reads the seen ids back; a batch is
-- committed only under the epoch it was processed with, so a worker that lost its partition
-- (paused, cut off) cannot commit behind the new owner's back.
ALTER TABLE utopia.consumer_progress
    ADD COLUMN owner text,
    ADD COLUMN owner_epoch bigint NOT NULL DEFAULT 0;
