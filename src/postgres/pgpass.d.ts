/** The `pgpass` package: libpq's password file lookup (PGPASSFILE, else ~/.pgpass, ignored unless 0600). */
declare module "pgpass" {
  interface ConnInfo {
    host?: string;
    port?: number | string;
    database?: string;
    user?: string;
  }
  function pgpass(connInfo: ConnInfo, cb: (password: string | undefined) => void): void;
  export default pgpass;
}
