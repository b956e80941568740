-- sqlite2pg capture of rows that REPLACE conflict resolution deletes. SQLite
-- fires no DELETE trigger for them unless the application turned on
-- recursive_triggers, so these BEFORE triggers record, ahead of every
-- INSERT or UPDATE, the keys of the rows whose unique values the new row
-- would collide with. A row that is not deleted in the end only costs a
-- harmless re-read; a statement that fails takes its records with it.
--
-- Placeholders as in capture.sql, plus the trigger names binsert and
-- bupdate; update_of (`OF "a", "b" `: the columns whose update can create a
-- conflict — indexed columns, the base columns of generated columns and of
-- expressions, the columns of a partial index's WHERE — or nothing when
-- every UPDATE can); not_self (the updated row itself is no conflict); and
-- conflicts, the match of one unique index against NEW, e.g.
--   "email" = NEW."email"
--   "a" = NEW."a" AND "b" COLLATE "NOCASE" = NEW."b"   (the index's collation)
--   (lower(name)) = (lower(NEW."name")) AND (deleted = 0)   (an expression;
--                                     a partial index's WHERE on the stored row)
--   "full" = NEW."full"               (a generated column: NEW holds its value)
-- The statement between each_index and end is repeated once per unique
-- index, so SQLite looks every match up by its own index.
CREATE TRIGGER IF NOT EXISTS {{binsert}} BEFORE INSERT ON {{table}}
BEGIN
{{each_index}}  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  SELECT {{table_literal}}, 'R', {{row_key}}, julianday('now') FROM {{table}} WHERE {{conflicts}};
{{end}}END;

CREATE TRIGGER IF NOT EXISTS {{bupdate}} BEFORE UPDATE {{update_of}}ON {{table}}
BEGIN
{{each_index}}  INSERT INTO "_sqlite2pg_changes" (tbl, op, {{key_columns}}, at)
  SELECT {{table_literal}}, 'R', {{row_key}}, julianday('now') FROM {{table}} WHERE {{conflicts}} AND ({{not_self}});
{{end}}END;
