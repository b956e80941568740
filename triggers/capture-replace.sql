-- sqlite2pg capture of rows that REPLACE conflict resolution deletes. SQLite
-- fires no DELETE trigger for them unless the application turned on
-- recursive_triggers, so these BEFORE triggers record, ahead of every
-- INSERT or UPDATE, the keys of the rows whose unique values the new row
-- would collide with. A row that is not deleted in the end only costs a
-- harmless re-read; a statement that fails takes its records with it.
-- Placeholders as in capture.sql, plus {{binsert}} {{bupdate}} (trigger
-- names), {{conflicts}} (the unique-value match against NEW, e.g.
-- ("email" = NEW."email") OR ("a" = NEW."a" AND "b" = NEW."b")),
-- {{unique_columns}} (the UPDATE trigger fires only when one of them is
-- set) and {{not_self}} (the updated row itself is not a conflict).
CREATE TRIGGER IF NOT EXISTS {{binsert}} BEFORE INSERT ON {{table}}
BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  SELECT {{table_literal}}, 'R', {{row_key}}, julianday('now') FROM {{table}} WHERE {{conflicts}};
END;

CREATE TRIGGER IF NOT EXISTS {{bupdate}} BEFORE UPDATE OF {{unique_columns}} ON {{table}}
BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  SELECT {{table_literal}}, 'R', {{row_key}}, julianday('now') FROM {{table}} WHERE ({{conflicts}}) AND {{not_self}};
END;
