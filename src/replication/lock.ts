/**
 * The source's advisory lock: one active daemon per source. A second
 * daemon waits for it as a standby; `status`, `init` and `cutover` ask
 * whether anyone holds it.
 *
 * The lock key is derived in one place, {@link LOCK_KEY_SQL}, and must
 * never change: daemons of different versions running against the same
 * source during an upgrade must contend for the same key. It is
 * `hashtext('sqlite2pg:' || source_id)`, a 32-bit int4 taken as the
 * single-bigint form of `pg_advisory_lock` (in `pg_locks`: objsubid 1,
 * classid the high and objid the low 32 bits, sign-extended).
 */
import type pg from "pg";
import type { Logger } from "../observe/logger.js";
import { quoteIdent } from "../ident.js";
import { connectPg } from "../postgres/pg.js";
import { STATE_CHANNEL } from "./state.js";

/** SQL for the lock key of the source id given as `$1`. Never change it (see above). */
const LOCK_KEY_SQL = "hashtext('sqlite2pg:' || $1)";

/** Whether a daemon holds the source's advisory lock right now. */
export async function daemonRunning(c: pg.ClientBase, sourceId: string): Promise<boolean> {
  const r = await c.query(
    `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted
       AND ((classid::bigint << 32) | objid::bigint) = ${LOCK_KEY_SQL}::bigint) AS running`,
    [sourceId],
  );
  return r.rows[0].running;
}

/**
 * The lock, held on a connection of its own. If that connection dies the
 * lock is gone with it: `lost` turns true and the daemon stops applying
 * until it has taken the lock again. The connection is otherwise idle, so
 * it also LISTENs on the state channel: `onNotify` hears `sqlite2pg
 * cutover` and `unfreeze` change the request.
 */
export class SourceLock {
  private client: pg.Client | null = null;
  /**
   * The lock is not held: not taken yet, a {@link take} that failed half
   * way (the server unreachable while it is restarted), or its connection
   * ended since.
   */
  lost = true;

  constructor(
    private readonly pgUrl: string | undefined,
    private readonly sourceId: string,
    private readonly log: Logger,
    private readonly onNotify: () => void,
    /** Called when another daemon holds the lock and this one starts waiting for it. */
    private readonly onWaiting: () => void = () => undefined,
  ) {}

  /** Take the lock (again), waiting as a standby while another daemon holds it. */
  async take(): Promise<void> {
    // Held only once all of this succeeded: a failure on the way leaves
    // `lost` true, so the daemon tries again instead of applying unlocked.
    this.lost = true;
    await this.client?.end().catch(() => undefined);
    const lock = await connectPg(this.pgUrl, "sqlite2pg lock");
    this.client = lock;
    let ended = false;
    const lost = () => {
      ended = true;
      if (this.client === lock) this.lost = true;
    };
    lock.on("error", lost);
    lock.on("end", lost);
    const got = await lock.query(`SELECT pg_try_advisory_lock(${LOCK_KEY_SQL}) AS ok`, [this.sourceId]);
    if (!got.rows[0].ok) {
      this.log.info({ source_id: this.sourceId }, "another daemon holds this source; waiting as a standby");
      this.onWaiting();
      await lock.query(`SELECT pg_advisory_lock(${LOCK_KEY_SQL})`, [this.sourceId]);
      this.log.info({ source_id: this.sourceId }, "took over the source");
    }
    lock.on("notification", (m) => {
      if (m.payload === this.sourceId) this.onNotify();
    });
    await lock.query(`LISTEN ${quoteIdent(STATE_CHANNEL)}`);
    if (!ended && this.client === lock) this.lost = false;
  }

  /** Release the lock (its connection ends). */
  async release(): Promise<void> {
    const c = this.client;
    this.client = null;
    await c?.end();
  }
}
