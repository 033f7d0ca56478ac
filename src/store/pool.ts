import pg from 'pg';
import type { Logger } from '../log/logger.js';

/**
 * A pooled Postgres client. Never one shared `pg.Client` (LESSONS: mem0 #6956), and always an
 * `error` listener so a Postgres restart is logged and survived instead of crashing the host
 * (LESSONS: mem0 #7294).
 */
export function createPool(connectionString: string, max: number, log: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 5_000,
    statement_timeout: 30_000,
    application_name: 'engram',
  });
  pool.on('error', (err) => log.warn({ err }, 'idle postgres client error'));
  return pool;
}

/** Runs `fn` in a transaction on one pooled client; rolls back on any throw. */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
