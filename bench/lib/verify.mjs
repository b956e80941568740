// After each tool: compare the target database with the SQLite source.
//  * exact row counts of every table;
//  * a sample of ~300 rows per table compared value by value (the key is the
//    INTEGER PRIMARY KEY, or for the keyless `events` table the `ts` column,
//    with rows of equal ts matched as a multiset);
//  * number of indexes and foreign keys that ended up in Postgres.
// Value comparison is done on Postgres' text output (session TimeZone UTC):
// numbers must be bit-identical doubles, booleans 0/1 ↔ false/true, blobs
// byte-identical, DATETIME text equal to the timestamp's text (a "+00" zone
// suffix is accepted), every other text byte-identical.

const SAMPLE = 300;
const KEYS = { users: 'id', orders: 'id', events: 'ts' };
const TYPE_ABBR = { 'timestamp with time zone': 'timestamptz', 'timestamp without time zone': 'timestamp',
  'double precision': 'float8', real: 'float4', boolean: 'bool', bigint: 'int8', integer: 'int4' };
const qi = (s) => '"' + s.replace(/"/g, '""') + '"';

async function findSchema(pg, table) {
  const r = await pg.query(
    `SELECT table_schema FROM information_schema.tables
      WHERE table_name = $1 AND table_schema NOT IN ('pg_catalog', 'information_schema')
      ORDER BY table_schema = 'public' DESC LIMIT 1`, [table]);
  return r.rows[0]?.table_schema ?? null;
}

function same(src, pgText) {
  if (src === null || src === undefined) return pgText === null;
  if (pgText === null) return false;
  if (Buffer.isBuffer(src)) return pgText.toLowerCase() === '\\x' + src.toString('hex');
  if (typeof src === 'number' || typeof src === 'bigint') {
    const n = pgText === 'true' ? 1 : pgText === 'false' ? 0 : Number(pgText);
    return n === Number(src);
  }
  if (pgText === src) return true;
  if (/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(src)) return pgText.replace(/\+00(:00)?$/, '') === src;
  return false;
}

const show = (v) => (v === null || v === undefined ? 'NULL'
  : Buffer.isBuffer(v) ? `x'${v.toString('hex').slice(0, 16)}…'` : JSON.stringify(v).slice(0, 60));

// Returns { counts: {t: n|null}, rowsOk, sampled, mismatches, examples[], indexes, fks, extraTables[], columns: {t: ['col type*']} }
export async function verify(pg, sqlite, srcCounts) {
  await pg.query("SET TimeZone = 'UTC'");
  const res = { counts: {}, rowsOk: true, sampled: 0, mismatches: 0, examples: [], indexes: 0, fks: 0, columns: {} };
  const schemas = new Set();
  for (const [table, key] of Object.entries(KEYS)) {
    const schema = await findSchema(pg, table);
    if (!schema) { res.counts[table] = null; res.rowsOk = false; continue; }
    schemas.add(schema);
    const rel = `${qi(schema)}.${qi(table)}`;
    res.counts[table] = Number((await pg.query(`SELECT count(*) AS n FROM ${rel}`)).rows[0].n);
    res.columns[table] = (await pg.query(
      `SELECT attname AS c, format_type(atttypid, atttypmod) AS t, attnotnull AS nn FROM pg_attribute
        WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [rel])).rows
      .map((r) => `${r.c} ${TYPE_ABBR[r.t] ?? r.t}${r.nn ? '*' : ''}`);
    if (res.counts[table] !== srcCounts[table]) res.rowsOk = false;

    // Sample: rows at evenly spaced rowids, then every row sharing their key.
    const n = srcCounts[table];
    const rowids = [...new Set(Array.from({ length: Math.min(SAMPLE, n) }, (_, i) => 1 + Math.floor((i * n) / Math.min(SAMPLE, n))))];
    const keys = sqlite.prepare(`SELECT DISTINCT ${qi(key)} AS k FROM ${qi(table)} WHERE rowid IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(rowids)).map((r) => r.k);
    const src = sqlite.prepare(`SELECT * FROM ${qi(table)} WHERE ${qi(key)} IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(keys));
    const cols = Object.keys(src[0] ?? {});
    let dst;
    try {
      dst = (await pg.query(`SELECT ${cols.map((c) => `${qi(c)}::text AS ${qi(c)}`).join(', ')} FROM ${rel}
                              WHERE ${qi(key)} = ANY($1)`, [keys.map(String)])).rows;
    } catch (e) {
      res.mismatches += src.length;
      res.examples.push(`${table}: cannot read sample (${e.message})`);
      continue;
    }
    const pool = new Map(); // key text -> unmatched pg rows
    for (const r of dst) pool.set(r[key], [...(pool.get(r[key]) ?? []), r]);
    for (const row of src) {
      res.sampled++;
      const cands = pool.get(String(row[key])) ?? [];
      const i = cands.findIndex((r) => cols.every((c) => same(row[c], r[c])));
      if (i >= 0) { cands.splice(i, 1); continue; }
      res.mismatches++;
      if (res.examples.filter((e) => e.startsWith(table + ' ')).length < 3) {
        const near = cands[0];
        const diff = near ? cols.filter((c) => !same(row[c], near[c]))
          .map((c) => `${c}: ${show(row[c])} → ${show(near[c])}`).join('; ') : 'row missing';
        res.examples.push(`${table} ${key}=${row[key]}: ${diff}`);
      }
    }
  }
  if (schemas.size) {
    const s = [...schemas];
    res.extraTables = (await pg.query(
      `SELECT table_schema || '.' || table_name AS t FROM information_schema.tables
        WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE' AND NOT table_name = ANY($2) ORDER BY 1`,
      [s, Object.keys(KEYS)])).rows.map((r) => r.t);
    res.indexes = Number((await pg.query(
      `SELECT count(*) AS n FROM pg_indexes WHERE schemaname = ANY($1) AND tablename = ANY($2)`, [s, Object.keys(KEYS)])).rows[0].n);
    res.fks = Number((await pg.query(
      `SELECT count(*) AS n FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE c.contype = 'f' AND n.nspname = ANY($1)`, [s])).rows[0].n);
  }
  return res;
}
