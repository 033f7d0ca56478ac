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
  // pg's own fields, set from the server's BackendKeyData: checked, since a change of their
  // shape (protocol 3.2's longer keys) must cost the cancel, not the process.
  const { processID, secretKey, host, port } = client as unknown as Record<string, unknown>;
  if (typeof processID !== 'number' || typeof secretKey !== 'number') return;
  if (typeof host !== 'string' || typeof port !== 'number') return;
  try {
    const message = serialize.cancel(processID, secretKey);
    // A host starting with a slash is the directory of the server's Unix socket, as libpq reads it.
    const socket = host.startsWith('/') ? connect(`${host}/.s.PGSQL.${port}`) : connect(port, host);
    socket.setTimeout(CANCEL_CONNECT_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    // The server reads the request and closes the connection; it never answers.
    socket.on('connect', () => socket.end(message));
  } catch {
    // Runs in an abort listener, where a throw would end the process: the statement then runs
    // to its statement_timeout, as it did before cancels.
  }
}
