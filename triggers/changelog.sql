-- sqlite2pg change capture: the changelog and its metadata, created by
-- `sqlite2pg init` inside the application's SQLite file.
--
-- One row per changed row of a replicated table, recording only its key
-- (the rowid, or the primary key of a WITHOUT ROWID table in k1..k4); the
-- daemon reads the row's current values itself. `seq` is a plain INTEGER
-- PRIMARY KEY: SQLite has a single writer, so seq values commit in order
-- with no gaps and the daemon's checkpoint is a high-water mark. The daemon
-- never deletes the newest applied row, so seq never restarts below it.
CREATE TABLE IF NOT EXISTS "_sqlite2pg_changes" (
  seq INTEGER PRIMARY KEY,
  tbl TEXT NOT NULL,
  op  TEXT NOT NULL,  -- I insert, U update, K old key of an update that moved the row, D delete
  k1, k2, k3, k4,     -- no declared type: values are kept exactly as the row holds them
  at  REAL NOT NULL   -- julianday of the change, for lag in seconds
);

CREATE TABLE IF NOT EXISTS "_sqlite2pg_meta" (
  key   TEXT PRIMARY KEY,
  value
);
