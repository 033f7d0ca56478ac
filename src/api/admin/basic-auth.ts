import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * `Basic <credentials>` (RFC 7617): the scheme's name in any case (RFC 9110, 11.1), as the
 * Bearer scheme of /v1 is read (tenancy.ts), with one or more spaces before the credentials.
 * Comparing the whole header refused `basic ...` from a client that spelled it so.
 */
const BASIC = /^basic +(\S+)$/i;

/**
 * ADMIN_PASSWORD for every route of `scope` (Bull Board and the memory browser): user `admin`,
 * the password as set. The credentials are compared as digests in constant time, so the time
 * taken says nothing about the password; no attempt is logged, and neither is the header.
 */
export function requireAdminPassword(scope: FastifyInstance, password: string): void {
  const expected = digest(Buffer.from(`admin:${password}`).toString('base64'));
  scope.addHook('onRequest', async (request, reply) => {
    const credentials = BASIC.exec(request.headers.authorization ?? '')?.[1] ?? '';
    if (!timingSafeEqual(digest(credentials), expected))
      return reply
        .status(401)
        .header('www-authenticate', 'Basic realm="engram admin"')
        .send({ error: 'authentication required' });
  });
}
