/** Events of a running daemon (all optional): the metrics count them, the service manager hears of them. */
export interface DaemonEvents {
  /** This process became the active daemon, or started waiting as a standby. */
  role?(role: "active" | "standby"): void;
  /** A batch of changes was applied and committed. */
  applied?(changes: number, seconds: number): void;
  /** A step failed; `kind` is the error's code (a project code, a SQLSTATE or a system error code). */
  error?(kind: string): void;
  /** The daemon checkpointed the application's WAL, copying this many frames into the database file. */
  checkpoint?(frames: number): void;
  /** A cutover attempt starts. */
  cutoverAttempt?(): void;
  /** SQLite was frozen this long, in ms: by a committed cutover, or by an attempt undone. */
  freeze?(ms: number, committed: boolean): void;
}
