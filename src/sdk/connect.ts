import type { RedisClient } from '../queue/connection.js';
import { readPublication, type Publication } from '../config/published-settings.js';
import { UnavailableError } from './errors.js';

/**
 * The client's first use: connect (a lazy client), then read the published settings, all within
 * `ms` (the client's enqueueTimeoutMs). A refused or closed connection fails at once, with the
 * driver's error as `cause`, as an enqueue on a lost connection does; a Redis that does not
 * answer fails once `ms` pass. Either way nothing is cached: the next call tries again.
 */
export async function connectAndRead(redis: RedisClient, prefix: string, ms: number): Promise<Publication | null> {
  const signal = AbortSignal.timeout(ms);
  const late = () =>
    new UnavailableError(
      'redis',
      `Redis did not answer within ${ms} ms while the engram client connected (status ${redis.status}); try again later`,
    );
  await untilReady(redis, signal, late);
  return within(readPublication(redis, prefix), signal, late);
}

/** Resolves when the connection is ready; rejects at its first error, its end, or `signal`. */
function untilReady(redis: RedisClient, signal: AbortSignal, late: () => Error): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  if (redis.status === 'end') return Promise.reject(new Error('Connection is closed.'));
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: Error) => {
      redis.off('ready', onReady);
      redis.off('error', onError);
      redis.off('end', onEnd);
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => settle();
    const onError = (err: Error) => settle(err);
    const onEnd = () => settle(new Error('Connection is closed.'));
    const onAbort = () => settle(late());
    redis.on('ready', onReady);
    redis.on('error', onError);
    redis.on('end', onEnd);
    signal.addEventListener('abort', onAbort);
    // A lazy client that never connected; otherwise ioredis is connecting or reconnecting already.
    if (redis.status === 'wait') redis.connect().catch(() => undefined);
  });
}

/** `work`, or `late()` once `signal` aborts (the work itself runs on). */
function within<T>(work: Promise<T>, signal: AbortSignal, late: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(late());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
