import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { redisState, redisUnavailable } from '../src/dependency-errors.js';

/**
 * What a 503 says is wrong with Redis, for the errors ioredis gives. A full Redis is checked end
 * to end in redis-full.test.ts; a cluster's give-up during a failover is hard to time there, so
 * its error (ioredis' own message around the last reply) is built here as ioredis builds it.
 */
describe('the state a refusal from Redis names', () => {
  it('reads the reply a cluster client gave up on, as it reads the reply itself', () => {
    const down = new ReplyError('CLUSTERDOWN The cluster is down');
    const gaveUp = new Error(`Too many Cluster redirections. Last error: ${String(down)}`);
    expect(redisUnavailable(gaveUp)).toBe(true);
    expect(redisState(gaveUp)).toBe('cluster is down');
    expect(redisState(down)).toBe('cluster is down');
  });

  it('says "not reachable" only of a connection that is', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), {
      code: 'ECONNREFUSED',
      syscall: 'connect',
    });
    expect(redisState(refused)).toBe('is not reachable');
    expect(redisState(new ReplyError("READONLY You can't write against a read only replica."))).toBe(
      'is a read-only replica: REDIS_URL must name the primary',
    );
    expect(redisState(new Error('Command timed out'))).toBe('did not answer in time');
  });
});
