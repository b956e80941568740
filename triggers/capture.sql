-- sqlite2pg capture triggers for one table. The double-brace placeholders are
-- filled by `sqlite2pg init` with quoted identifiers:
--   {{table}}        the table, quoted            {{table_literal}}  its name as a string
--   {{ins}} {{upd}} {{del}}                       the trigger names, quoted
--   {{key_columns}}  k1[, k2 …]                   {{new_key}} / {{old_key}}  NEW.rowid or NEW."a", NEW."b"
--   {{key_changed}}  OLD.rowid IS NOT NEW.rowid (or, per key column, a change of
--                    bytes or storage class, whatever the column's collation)
-- They record keys only: cheap for the application, and any value (blobs,
-- odd text) reaches Postgres through the daemon's COPY, never through SQL
-- text.
CREATE TRIGGER IF NOT EXISTS {{ins}} AFTER INSERT ON {{table}}
BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  VALUES ({{table_literal}}, 'I', {{new_key}}, julianday('now'));
END;

CREATE TRIGGER IF NOT EXISTS {{upd}} AFTER UPDATE ON {{table}}
BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  SELECT {{table_literal}}, 'K', {{old_key}}, julianday('now') WHERE {{key_changed}};
  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  VALUES ({{table_literal}}, 'U', {{new_key}}, julianday('now'));
END;

CREATE TRIGGER IF NOT EXISTS {{del}} AFTER DELETE ON {{table}}
BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  VALUES ({{table_literal}}, 'D', {{old_key}}, julianday('now'));
END;
