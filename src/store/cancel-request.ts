import { connect } from 'node:net';
import type pg from 'pg';
import { serialize } from 'pg-protocol';

/** How long a cancel may take to be sent; past it, the statement ends on its own timeout. */
const CANCEL_CONNECT_MS = 2_000;

/**
 * Asks Postgres to cancel the statement `client` is running: the protocol's CancelRequest, on a
 * connection of its own, as psql's Ctrl-C sends it. Not `pg_cancel_backend(pid)`: a pooler such
 * as PgBouncer forwards a CancelRequest to the right server, where the pid its clients see names
 * no backend of the server, or another one. Best effort: a server that is not reached lets the
 * statement run to its statement_timeout, as before.
 */
export function sendCancel(client: pg.PoolClient): void {
  const { processID, secretKey, host, port } = client as unknown as {
    processID: number | null;
    secretKey: number | null;
    host: string;
    port: number;
  };
  if (processID === null || secretKey === null) return;
  // A host starting with a slash is the directory of the server's Unix socket, as libpq reads it.
  const socket = host.startsWith('/') ? connect(`${host}/.s.PGSQL.${port}`) : connect(port, host);
  socket.setTimeout(CANCEL_CONNECT_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  // The server reads the request and closes the connection; it never answers.
  socket.on('connect', () => socket.end(serialize.cancel(processID, secretKey)));
}
