import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isLoopback } from './access-guard.js';

/**
 * DNS rebinding: a page on attacker.example, whose name the attacker then points at 127.0.0.1,
 * reaches a loopback engram as its own origin; the browser sends `Host: attacker.example:<port>`
 * and `Origin: http://attacker.example:<port>`, and lets the page read every answer. Refusing a
 * Host the API does not go by shuts that door before any route runs, and makes Host a name the
 * memory browser's same-origin check (admin/forms.ts) can trust.
 */

/** `ALLOWED_HOSTS`: names (no port) the API answers besides loopback ones; `*` for any. */
export type AllowedHosts = readonly string[];

/** The routes any Host may reach: probes and counts, which orchestrators ask by the pod's IP. */
const OPEN_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** A Host header: a name or an IPv4 address, or an IPv6 one in brackets, and maybe a port. */
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/i;

/** The name of a Host header (lower case, IPv6 in brackets), or null when it is no host. */
export function hostnameOf(host: string): string | null {
  return HOST_HEADER.exec(host)?.[1]?.toLowerCase() ?? null;
}

/**
 * The names allowed when ALLOWED_HOSTS is unset: none beyond loopback when the API listens on
 * loopback (the rebinding case); any when it listens beyond, where API_KEYS or an authenticating
 * proxy (ALLOW_OPEN_ACCESS) guard it and the names it is reached by are the deployment's.
 */
export function defaultAllowedHosts(bindHost: string): AllowedHosts {
  return isLoopback(bindHost) ? [] : ['*'];
}

/** Whether a host name (no port) is one the API answers: loopback names always, then the list. */
export function hostAllowed(hostname: string, allowed: AllowedHosts): boolean {
  return isLoopback(hostname) || allowed.includes('*') || allowed.includes(hostname);
}

/**
 * Whether an MCP request's Origin may use /mcp (the MCP streamable-HTTP spec asks servers to
 * check it): absent (not a browser), this very origin (Host is trusted by then), a loopback page,
 * or a name listed by ALLOWED_HOSTS. `*` does not stretch to origins: it says which names reach
 * the API, not which sites' pages may drive it. `null` (a sandboxed or file page) is refused.
 */
function originAllowed(request: FastifyRequest, allowed: AllowedHosts): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (url.host === request.headers.host?.toLowerCase()) return true;
  return isLoopback(url.hostname) || allowed.includes(url.hostname);
}

/** How many Host headers a request carried (Node's `headers` keeps only the first). */
function hostHeaders(raw: string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.length === 4 && raw[i]?.toLowerCase() === 'host') n++;
  return n;
}

const clip = (text: string) => JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}...` : text);

/**
 * Refuses, before any route and before authentication, a request whose Host is not allowed
 * (421 Misdirected Request: the client reached a server that does not go by that name) and an
 * /mcp request from a foreign Origin (403, as the MCP spec says). Both name ALLOWED_HOSTS.
 */
export function registerHostGuard(app: FastifyInstance, allowed: AllowedHosts): void {
  app.addHook('onRequest', async (request, reply) => {
    // HTTP/1.1 wants exactly one Host (RFC 9112, 3.2): Node keeps the first of several, so a
    // proxy that routed by the second and engram would disagree on which host this is.
    const hosts = hostHeaders(request.raw.rawHeaders);
    if (hosts > 1 || (hosts === 0 && request.raw.httpVersion === '1.1'))
      return reply.status(400).send({
        error:
          hosts > 1
            ? `a request with ${hosts} Host headers: send exactly one`
            : 'an HTTP/1.1 request without a Host header: send one (Host: 127.0.0.1:<port>, say)',
      });
    // The matched route, as tenancy's check does: `/%6Dcp` is /mcp too. Unmatched URLs are checked.
    const route = request.routeOptions.url;
    if (route !== undefined && OPEN_ROUTES.has(route)) return;
    const host = request.headers.host;
    const name = host === undefined ? null : hostnameOf(host);
    if (name === null || !hostAllowed(name, allowed))
      return reply.status(421).send({
        error: `${host === undefined ? 'a request without a Host header' : `Host ${clip(host)}`} is not a name this API answers to (DNS rebinding protection): reach it as localhost, 127.0.0.1 or [::1], or add the name to ALLOWED_HOSTS`,
      });
    if (route === '/mcp' && !originAllowed(request, allowed))
      return reply.status(403).send({
        error: `Origin ${clip(String(request.headers.origin))} may not use /mcp (DNS rebinding protection): a browser page must come from this host, a loopback one, or a name in ALLOWED_HOSTS`,
      });
  });
}
