import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { tenantNameSchema } from '../core/names.js';
import { AuthError, InputError } from '../errors.js';
import { clipText } from '../core/safe-text.js';

/** Every tenant: an operator's key. */
export const ALL_TENANTS = '*';

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller's tenant (the first label of every namespace it may touch), `*`, or null when keys are off. */
    tenant: string | null;
  }
}

const digest = (key: string) => createHash('sha256').update(key).digest('hex');

/** Which body fields hold namespaces: required ones, and prefixes that default to the tenant's root. */
export interface NamespaceFields {
  required?: string[];
  defaulted?: string[];
}

/**
 * API keys scoped to tenants (invariant 6): a key maps to a tenant, and a tenant's namespaces
 * are those whose first label is the tenant. Keys are compared by their SHA-256, so lookups take
 * the same time whatever the key, and the raw keys are not kept in memory past start.
 */
export class Tenancy {
  private readonly tenants: Map<string, string> | null;

  constructor(keys: { tenant: string; key: string }[] | undefined) {
    this.tenants = keys?.length ? new Map(keys.map(({ tenant, key }) => [digest(key), tenant])) : null;
  }

  /** Whether API keys are on (every /v1 request needs one). */
  get keyed(): boolean {
    return this.tenants !== null;
  }

  /** Authenticates every /v1 and /mcp request: `Authorization: Bearer <key>` or `x-api-key: <key>`. */
  register(app: FastifyInstance) {
    app.decorateRequest('tenant', null);
    if (!this.tenants) return;
    const tenants = this.tenants;
    app.addHook('onRequest', async (request, reply) => {
      // The matched route, not the raw URL: `/%761/...` decodes to a /v1 route but does not
      // start with "/v1/" as typed. Unmatched URLs have no route and end as 404.
      const route = request.routeOptions.url;
      if (!route?.startsWith('/v1/') && route !== '/mcp') return;
      const header = request.headers.authorization;
      // The scheme's name is case-insensitive (RFC 9110, 11.1): `bearer <key>` is the same.
      const key = /^bearer /i.test(header ?? '')
        ? header?.slice(7)
        : (request.headers['x-api-key'] as string | undefined);
      const tenant = key ? tenants.get(digest(key)) : undefined;
      if (!tenant)
        return reply
          .status(401)
          .header('www-authenticate', 'Bearer')
          .send({ error: 'a valid API key is required (Authorization: Bearer <key>)' });
      request.tenant = tenant;
    });
  }

  /**
   * Confines a request body's namespace fields to the caller's tenant: a namespace or prefix
   * must start with the tenant's label (403 otherwise); an optional prefix that is absent
   * becomes the tenant's root. Shapes are left to the store's own schemas (400).
   */
  confine<T>(request: FastifyRequest, body: T, fields: NamespaceFields): T {
    return this.scope(request, body, fields, false);
  }

  /**
   * A write's body: confined as above, and its history actor is the key's tenant, never what the
   * body claims (a caller's own label is kept after it, for its own audit).
   */
  confineWrite<T>(request: FastifyRequest, body: T, fields: NamespaceFields): T {
    return this.scope(request, body, fields, true);
  }

  /** Both in one copy of the body; the caller's object is never changed. */
  private scope<T>(request: FastifyRequest, body: T, fields: NamespaceFields, write: boolean): T {
    const tenant = this.tenantOf(request);
    // Anything but an object goes on as it is, for the store's schema to refuse: an array spread
    // into an object would pass for `{}`.
    if (!tenant || (tenant === ALL_TENANTS && !write) || !body || typeof body !== 'object' || Array.isArray(body))
      return body;
    const out = { ...(body as Record<string, unknown>) };
    if (tenant !== ALL_TENANTS) {
      for (const field of fields.defaulted ?? []) {
        if (out[field] === undefined || (Array.isArray(out[field]) && out[field].length === 0)) out[field] = [tenant];
      }
      for (const field of [...(fields.required ?? []), ...(fields.defaulted ?? [])]) {
        const value = out[field];
        if (Array.isArray(value) && value[0] !== tenant) {
          throw new AuthError(
            `${field} is outside your tenant: its first label must be "${tenant}", not ${brief(value[0])}`,
            true,
          );
        }
      }
    }
    // An actor that is not a non-empty string is left for the schema to refuse, as without keys.
    if (write && out.actor === undefined) out.actor = `api:${tenant}`;
    // One over the schema's 200 characters is too (cut, it passed for valid).
    else if (write && typeof out.actor === 'string' && out.actor && out.actor.length <= 200)
      out.actor = clipText(`api:${tenant}:${out.actor}`, 200);
    return out as T;
  }

  /**
   * The context of enqueued turns carries the tenant, so namespace templates can start with it.
   * An operator's key names the tenant itself: a name no key could hold would fill namespaces no
   * tenant can reach (a tool write left there for good, a recall or erase of nobody that answers
   * 200), so it is refused here, for every route that takes a context, as it is for turns.
   */
  stampContext(request: FastifyRequest, context: Record<string, string>): Record<string, string> {
    const tenant = this.tenantOf(request);
    if (!tenant) return context;
    if (tenant === ALL_TENANTS) {
      if (context.tenant !== undefined) checkTenantName(context.tenant);
      return context;
    }
    if (context.tenant !== undefined && context.tenant !== tenant) {
      throw new AuthError(`context.tenant "${context.tenant}" is not your tenant`, true);
    }
    return { ...context, tenant };
  }

  /**
   * The thread id engram keys a caller's thread by: behind its tenant, so that tenants' threads of
   * the same name share no buffer, message ids or cursor. An operator's key files the thread
   * under the context's tenant.
   */
  threadKey(request: FastifyRequest, threadId: string, context: Record<string, string>): string {
    const tenant = this.tenantOf(request);
    if (!tenant) return threadId;
    if (tenant !== ALL_TENANTS) return `${tenant}/${threadId}`;
    const owner = context.tenant;
    if (!owner) throw new InputError("an operator key must name the thread's tenant in context.tenant");
    // Checked here, not left to the reflection job: turns filed under a name its payload schema
    // refuses would be buffered and accepted, then the job would fail as unrecoverable, for good.
    checkTenantName(owner);
    return `${owner}/${threadId}`;
  }

  /** Deny by default: with keys on, a request that reached here unauthenticated is refused. */
  private tenantOf(request: FastifyRequest): string | null {
    if (this.tenants && !request.tenant) throw new AuthError('a valid API key is required', false);
    return request.tenant;
  }
}

/**
 * An operator's `context.tenant`: a name `API_KEYS` could give a tenant (400 otherwise). The
 * memory browser's erase form checks its tenant field with it too (an admin is an operator).
 */
export function checkTenantName(owner: string): void {
  const name = tenantNameSchema.safeParse(owner);
  if (!name.success)
    throw new InputError(
      `context.tenant ${JSON.stringify(owner)} is not a tenant name: it ${name.error.issues[0]?.message}`,
      name.error.issues,
    );
}

/**
 * A label as an error message shows it: short whatever was sent (the message must not echo a
 * megabyte, nor walk a nested value).
 */
function brief(label: unknown): string {
  if (typeof label !== 'string')
    return Array.isArray(label) ? 'an array' : label === null ? 'null' : `a ${typeof label}`;
  return JSON.stringify(clipText(label, 64)) + (label.length > 64 ? ' (cut)' : '');
}
