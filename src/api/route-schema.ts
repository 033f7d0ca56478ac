import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  FastifySchemaCompiler,
  HookHandlerDoneFunction,
  RouteOptions,
} from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { invalidInput } from '../core/invalid-input.js';
import { errorSchema } from './schemas.js';

/**
 * Routes declare their zod schemas in `schema` (params, querystring, body, response): Fastify
 * checks requests with them before the handler runs, serializes answers with them, and the
 * OpenAPI document (openapi.ts) is generated from them. See docs/http-api.md, "Adding a route".
 */

/** How a refusal names the part of a request it is about. */
const PARTS: Record<string, string> = {
  params: 'path',
  querystring: 'query string',
  body: 'request body',
  headers: 'headers',
};

/**
 * Fastify hands an absent body to the validator as null, which a JSON `null` body also is: a
 * route whose body is validated marks an absent one first, so that a refusal says "received
 * undefined" (as it did) and an optional body may be left out.
 */
const ABSENT = Symbol('no body');
function markAbsentBody(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
  if (request.body === undefined) request.body = ABSENT;
  done();
}

/**
 * A 400 `invalid <part>: <its first issues>` (core/invalid-input.ts), the InputError that
 * errors.ts maps, as when each handler parsed its own input. Returned, not thrown: Fastify turns
 * a validator that throws into a 500.
 */
const zodValidator: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  const what = PARTS[httpPart ?? ''] ?? 'request';
  return (data) => {
    const parsed = schema.safeParse(data === ABSENT ? undefined : data);
    return parsed.success ? { value: parsed.data } : { error: invalidInput(what, parsed.error) };
  };
};

/**
 * Validation and serialization by the routes' zod schemas. Answers are encoded by their schema
 * (fastify-type-provider-zod: Dates become ISO text), so an answer the document does not
 * describe fails as a 500 rather than reaching a client.
 */
export function useZodSchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(zodValidator);
  app.setSerializerCompiler(serializerCompiler);
  app.addHook('onRoute', (route) => {
    if (!route.schema?.body || route.validatorCompiler) return;
    route.preValidation = [...[route.preValidation ?? []].flat(), markAbsentBody];
  });
}

/**
 * For a route whose body its service validates, after tenancy rewrote it (the store: namespaces
 * confined, the actor stamped, then the store's own schema, shared with the SDK): the route's
 * `schema.body` is that service's schema, documented and not checked a second time.
 */
export const bodyCheckedByService: Pick<RouteOptions, 'validatorCompiler'> = {
  validatorCompiler: () => () => true,
};

/**
 * A route schema's mark for a body that may be left out: @fastify/swagger calls every body
 * required, and openapi.ts reads this (an `x-` key reaches the operation) to say it is not.
 */
export const OPTIONAL_BODY = 'x-optional-body';

/** What each refusal means, as the document says it (errors.ts decides the statuses). */
const MEANINGS = {
  400: 'bad input: `error` names what is wrong, `details` lists the first 20 problems',
  401: 'no valid API key (`Authorization: Bearer <key>` or `x-api-key: <key>`)',
  403: "a namespace, prefix or context.tenant outside the key's tenant",
  404: 'not found',
  409: 'conflicts with the current state; nothing was written',
  413: 'too large: the body (over 4 MiB), or what it asks to index or embed',
  415: 'the body is not JSON (`content-type: application/json`)',
  503: 'a dependency (Redis, Postgres, the embedding model) is not reachable; retry later',
} as const;
type Refused = keyof typeof MEANINGS;

/** Refusal statuses for a route's `schema.response`, each the error shape with its meaning. */
export function refusals<S extends Refused>(...statuses: S[]): Record<S, typeof errorSchema> {
  return Object.fromEntries(statuses.map((s) => [s, refusal(MEANINGS[s])])) as Record<S, typeof errorSchema>;
}

/** One refusal with a meaning of the route's own (`{ 404: refusal('no such item') }`). */
export const refusal = (meaning: string) => errorSchema.describe(meaning);

/**
 * For a `/v1` route that reads nothing of a tenant's (the deployment's kinds): with API keys it
 * needs a key (401) but has nothing to refuse a tenant (no 403 in its document).
 */
export const untenanted: Pick<RouteOptions, 'config'> = { config: { untenanted: true } as RouteOptions['config'] };
const isUntenanted = (route: RouteOptions) => (route.config as { untenanted?: boolean } | undefined)?.untenanted;

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Adds to the document of every `/v1` route what it may answer whatever its handler does: the
 * JSON body parser's refusals (400, 413, 415) when it takes a body, and with API keys,
 * tenancy's (401, 403) and the key schemes. A route's own meaning for a status is kept. Call
 * before the routes are registered.
 */
export function documentApiRoutes(app: FastifyInstance, keyed: boolean): void {
  app.addHook('onRoute', (route) => {
    const schema = route.schema as (FastifySchema & { hide?: boolean; response?: object }) | undefined;
    if (!route.url.startsWith('/v1/') || !schema || schema.hide) return;
    const methods = [route.method].flat();
    route.schema = {
      ...schema,
      response: {
        ...(methods.some((m) => BODY_METHODS.has(m)) ? refusals(400, 413, 415) : {}),
        ...(keyed ? (isUntenanted(route) ? refusals(401) : refusals(401, 403)) : {}),
        ...schema.response,
      },
      ...(keyed ? { security: [{ bearer: [] }, { apiKey: [] }] } : {}),
    };
  });
}
