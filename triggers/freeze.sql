-- sqlite2pg freeze: installed on every replicated table in the one short
-- write transaction that starts the cutover. From then on every write to
-- these tables fails with the message below, whatever connection makes it
-- and even if the daemon dies: the application's writes go to PostgreSQL.
-- `sqlite2pg unfreeze` removes them (only before the cutover is committed
-- in PostgreSQL). Placeholders: {{table}}, {{fins}} {{fupd}} {{fdel}}.
CREATE TRIGGER IF NOT EXISTS {{fins}} BEFORE INSERT ON {{table}}
BEGIN SELECT RAISE(ABORT, 'sqlite2pg: database frozen for the move to PostgreSQL; write to PostgreSQL'); END;

CREATE TRIGGER IF NOT EXISTS {{fupd}} BEFORE UPDATE ON {{table}}
BEGIN SELECT RAISE(ABORT, 'sqlite2pg: database frozen for the move to PostgreSQL; write to PostgreSQL'); END;

CREATE TRIGGER IF NOT EXISTS {{fdel}} BEFORE DELETE ON {{table}}
BEGIN SELECT RAISE(ABORT, 'sqlite2pg: database frozen for the move to PostgreSQL; write to PostgreSQL'); END;
