import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import Router from 'find-my-way';

/** The methods a wrong-method request is checked against, in the order `Allow` lists them. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * Tells a wrong method from a wrong path. Fastify answers both with 404, so `GET` on a `POST`
 * route read as "no such route" and a client could not tell a typo in its path from its verb;
 * RFC 9110 has 405 with `Allow` for the second. Fastify keeps its router to itself, so the served
 * routes are copied, as they are added, into a router of the same library (find-my-way) with
 * the same parameter bound, and asked only once a request has matched nothing.
 *
 * Call before any route is added: `onRoute` sees only the routes added after it.
 */
export function trackRoutes(app: FastifyInstance, maxParamLength: number): (request: FastifyRequest) => string[] {
  const router = Router({ maxParamLength });
  const noop = () => undefined;
  app.addHook('onRoute', (route) => {
    const methods = ([] as HTTPMethods[]).concat(route.method).filter((m) => METHODS.includes(m as never));
    for (const method of methods) {
      if (!router.hasRoute(method as never, route.url)) router.on(method as never, route.url, noop);
    }
  });
  return (request) => {
    const path = request.url.split('?', 1)[0] ?? '';
    return METHODS.filter((m) => m !== request.method && router.find(m, path) !== null);
  };
}

/** The not-found answer: 405 naming the methods the path answers, else 404. One shape, `{ error }`. */
export function notFoundOrWrongMethod(allowed: (request: FastifyRequest) => string[]) {
  return (request: FastifyRequest, reply: FastifyReply) => {
    const url = request.url.slice(0, 200);
    const methods = allowed(request);
    if (methods.length === 0) return reply.status(404).send({ error: `no route ${request.method} ${url}` });
    return reply
      .status(405)
      .header('allow', methods.join(', '))
      .send({ error: `${request.method} is not served at ${url}: it answers ${methods.join(', ')}` });
  };
}
