-- sqlite2pg freeze: installed on every replicated table in the one short
-- write transaction that starts the cutover. From then on every write to
-- these tables fails with the message below, whatever connection makes it
-- and even if the daemon dies: the application's writes go to PostgreSQL.
-- `sqlite2pg unfreeze` removes them (only before the cutover is committed
-- in PostgreSQL). After the cutover, while SQLite follows PostgreSQL (the
-- fallback), only the daemon writes here: inside its own write transaction
-- it holds the row 'fallback_apply' in the metadata table, which no other
-- connection ever sees (it is deleted before that transaction commits).
-- Placeholders: {{table}}, {{fins}} {{fupd}} {{fdel}}.
CREATE TRIGGER IF NOT EXISTS {{fins}} BEFORE INSERT ON {{table}}
WHEN NOT EXISTS (SELECT 1 FROM "_sqlite2pg_meta" WHERE key = 'fallback_apply')
BEGIN SELECT RAISE(ABORT, 'sqlite2pg: database frozen for the move to PostgreSQL; write to PostgreSQL'); END;

CREATE TRIGGER IF NOT EXISTS {{fupd}} BEFORE UPDATE ON {{table}}
WHEN NOT EXISTS (SELECT 1 FROM "_sqlite2pg_meta" WHERE key = 'fallback_apply')
BEGIN SELECT RAISE(ABORT, 'sqlite2pg: database frozen for the move to PostgreSQL; write to PostgreSQL'); END;

CREATE TRIGGER IF NOT EXISTS {{fdel}} BEFORE DELETE ON {{table}}
WHEN NOT EXISTS (SELECT 1 FROM "_sqlite2pg_meta" WHERE key = 'fallback_apply')
BEGIN SELECT RAISE(ABORT, 'sqlite2pg: database frozen for the move to PostgreSQL; write to PostgreSQL'); END;
