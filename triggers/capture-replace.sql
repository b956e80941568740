-- sqlite2pg capture of rows that REPLACE conflict resolution deletes. SQLite
-- fires no DELETE trigger for them unless the application turned on
-- recursive_triggers, so these BEFORE triggers record, ahead of every
-- INSERT or UPDATE, the keys of the rows whose unique values the new row
-- would collide with. A row that is not deleted in the end only costs a
-- harmless re-read; a statement that fails takes its records with it.
-- Placeholders as in capture.sql, plus {{binsert}} {{bupdate}} (trigger
-- names), {{conflicts}} (the match of every unique index against NEW, e.g.
-- ("email" = NEW."email") OR ("a" = NEW."a" AND "b" = NEW."b") OR
-- ((lower(name)) = (lower(NEW."name")) AND (deleted = 0)): columns under
-- the index's collation, expressions with their columns read from NEW,
-- generated columns by their NEW value, a partial index's WHERE on the
-- stored row), {{update_of}} (`OF "a", "b" ` — the columns, and the base
-- columns of generated ones and of a partial index's WHERE, whose update
-- can create a conflict; empty when every UPDATE can) and {{not_self}} (the
-- updated row itself is not a conflict).
CREATE TRIGGER IF NOT EXISTS {{binsert}} BEFORE INSERT ON {{table}}
BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  SELECT {{table_literal}}, 'R', {{row_key}}, julianday('now') FROM {{table}} WHERE {{conflicts}};
END;

CREATE TRIGGER IF NOT EXISTS {{bupdate}} BEFORE UPDATE {{update_of}}ON {{table}}
BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  SELECT {{table_literal}}, 'R', {{row_key}}, julianday('now') FROM {{table}} WHERE ({{conflicts}}) AND ({{not_self}});
END;
