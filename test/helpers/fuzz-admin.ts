import fc from 'fast-check';
import { badBodies, queryValue, withHead, type FuzzRequest, type RouteFuzz } from './fuzz-requests.js';

/**
 * Generated bad requests for the admin routes: Bull Board's API and pages under /admin/queues,
 * and the memory browser's pages and forms under /admin/memories. Every request to a route that
 * writes (pause, clean, add, a form's POST...) carries a defect that must be refused: a bad
 * queue, state, job or body, a wrong content type, or for a form, no same-origin header, a
 * stale version or a field the store refuses.
 */

const API = '/admin/queues/api/queues';
/** Bull Board's API routes: method, pattern below API, and whether a 2xx could write. */
const BOARD: [FuzzRequest['method'], string, boolean][] = [
  ['GET', '', false],
  ['PUT', '/pause', true],
  ['PUT', '/resume', true],
  ['GET', '/:queueName/metrics', false],
  ['GET', '/:queueName/default-job-options', false],
  ['GET', '/:queueName/workers', false],
  ['GET', '/:queueName/rate-limit', false],
  ['PUT', '/:queueName/rate-limit', true],
  ['PUT', '/:queueName/rate-limit/release', true],
  ['PUT', '/:queueName/retry/:queueStatus', true],
  ['PUT', '/:queueName/resume', true],
  ['GET', '/:queueName/job-data-schema', false],
  ['PATCH', '/:queueName/job-schedulers/:schedulerId', true],
  ['PUT', '/:queueName/job-schedulers/:schedulerId/remove', true],
  ['PUT', '/:queueName/job-schedulers/:schedulerId/run', true],
  ['POST', '/:queueName/add', true],
  ['PUT', '/:queueName/promote', true],
  ['PUT', '/:queueName/pause', true],
  ['PUT', '/:queueName/clean/:queueStatus', true],
  ['PUT', '/:queueName/concurrency', true],
  ['PUT', '/:queueName/empty', true],
  ['PUT', '/:queueName/obliterate', true],
  ['GET', '/:queueName/:jobId', false],
  ['GET', '/:queueName/:jobId/logs', false],
  ['GET', '/:queueName/:jobId/flow', false],
  ['PUT', '/:queueName/:jobId/retry', true],
  ['PUT', '/:queueName/:jobId/remove-unprocessed-children', true],
  ['PUT', '/:queueName/:jobId/clean', true],
  ['PUT', '/:queueName/:jobId/promote', true],
  ['PATCH', '/:queueName/:jobId/priority', true],
  ['PATCH', '/:queueName/:jobId/update-data', true],
  ['PATCH', '/:queueName/:jobId/delay', true],
];
/** Bull Board's other routes: its pages (HTML), its other API reads. All read-only. */
const BOARD_PAGES = [
  '/admin/queues',
  '/admin/queues/',
  '/admin/queues/*',
  '/admin/queues/api/job-schedulers',
  '/admin/queues/api/redis/stats',
  '/admin/queues/job-schedulers',
  '/admin/queues/metrics-history',
  '/admin/queues/queue/:queueName',
  '/admin/queues/queue/:queueName/:jobId',
];

/** Queue names no queue has: NUL, a lone surrogate, builtins' names, too long. */
const badQueue = fc.constantFrom(
  '%00',
  'reflection%00',
  '%ED%A0%80',
  'nope',
  '__proto__',
  'constructor',
  '%2E%2E',
  'a%2Fb',
  'q'.repeat(257),
);
/** Job and scheduler ids no job has (the setup's job ids are small numbers or thread ids). */
const badId = fc.constantFrom('%00', 'nope', '%ED%A0%80', '-1', '1e308', '__proto__', 'j'.repeat(257), 'a%00b');
const badStatus = fc.constantFrom('nope', '%00', '%ED%A0%80', 'LATEST', '__proto__', '');
/** Bodies Bull Board's routes must refuse: not JSON, not an object, too deep, too large. */
const badBoardBody = badBodies.filter((b) => b !== '' && b !== ' ');
/** Types that are not JSON: a 415 whatever the body. */
const notJson = fc.constantFrom('text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x');

function boardRequest(): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      route: fc.constantFrom(...BOARD),
      defect: fc.constantFrom('queue', 'id', 'status', 'body', 'type'),
      queue: badQueue,
      id: badId,
      status: badStatus,
      body: badBoardBody,
      type: notJson,
      query: queryValue,
      validQueue: fc.constantFrom('reflection', 'consolidation'),
    })
    .map((g) => {
      const [method, pattern, writes] = g.route;
      // A write gets one defect it has a place for; a read may come out valid.
      const has = (p: string) => pattern.includes(p);
      const defect =
        (g.defect === 'queue' && has(':queueName')) ||
        (g.defect === 'status' && has(':queueStatus')) ||
        (g.defect === 'id' && (has(':jobId') || has(':schedulerId')))
          ? g.defect
          : method === 'GET'
            ? 'query'
            : g.defect === 'type'
              ? 'type'
              : 'body';
      const path = pattern
        .replace(':queueName', defect === 'queue' ? g.queue : g.validQueue)
        .replace(':queueStatus', defect === 'status' ? g.status : 'failed')
        // Never a job that exists: job routes' writes are refused as unknown jobs (404).
        .replace(':jobId', g.id)
        .replace(':schedulerId', g.id);
      const body = method === 'GET' ? undefined : defect === 'body' ? g.body : '{}';
      return {
        method,
        path: `${API}${path}${defect === 'query' ? `?activeQueue=${g.query}&status=${g.query}` : ''}`,
        headers: (body === undefined
          ? {}
          : { 'content-type': defect === 'type' ? g.type : 'application/json' }) as Record<string, string>,
        body,
        writes: writes,
        what: `board: ${method} ${pattern} with a bad ${defect}`,
      } satisfies FuzzRequest;
    });
}

function boardPageRequest(): fc.Arbitrary<FuzzRequest> {
  return fc.tuple(fc.constantFrom(...BOARD_PAGES), badQueue, badId, queryValue).map(([pattern, queue, id, q]) => ({
    method: 'GET' as const,
    path: `${pattern.replace(':queueName', queue).replace(':jobId', id).replace('*', `x${id}`)}?status=${q}`,
    headers: {},
    writes: false,
    what: `board page ${pattern}`,
  }));
}

const MEMORIES = '/admin/memories';

/** The memory browser's pages: query strings with bad names, repeats, NUL, bad numbers. */
function memoryPageRequest(tenant: string): fc.Arbitrary<FuzzRequest> {
  const names = ['ns', 'q', 'mode', 'asOf', 'offset', 'nsOffset', 'key', 'hoffset', 'labels', 'userId', 'tenant'];
  const param = fc.tuple(fc.constantFrom(...names, 'done', 'version', '__proto__', 'extra'), queryValue);
  return fc
    .tuple(
      fc.constantFrom('', '/', '/item', '/erase', '/erase/confirm', '/style.css'),
      fc.array(param, { minLength: 1, maxLength: 4 }),
      fc.boolean(),
    )
    .map(([page, params, keepBase]) => {
      const q = params.map(([k, v]) => `${k}=${v}`).join('&');
      const base = `ns=${tenant}&ns=fuzz&ns=u1&key=k1&`;
      return {
        method: 'GET' as const,
        path: `${MEMORIES}${page}?${keepBase ? base : ''}${q}`,
        headers: {},
        writes: false,
        what: `memories page ${page}: ${q.slice(0, 80)}`,
      };
    });
}

/**
 * The memory browser's forms, each with a defect: no (or another) origin, a type that is no
 * form, a field missing or unknown, a stale version, or a value the store refuses. Fields are
 * written percent-encoded as they are sent: a lone surrogate's %ED%A0%80 decodes to U+FFFD,
 * which is valid text, so it comes with a stale version to be refused whatever it decodes to.
 */
function memoryFormRequest(tenant: string, origin: string): fc.Arbitrary<FuzzRequest> {
  const ns = `ns=${tenant}&ns=fuzz&ns=u1`;
  const stale = 'ifVersion=999999';
  const forms: Record<string, string> = {
    '/item/edit': `${ns}&key=k1&value=%7B%22content%22%3A%22x%22%7D&${stale}`,
    '/item/delete': `${ns}&key=k1&${stale}`,
    '/item/revert': `${ns}&key=k1&version=1&${stale}`,
  };
  const fieldDefects = fc.constantFrom(
    (f: string) => f.replace('key=k1', 'key=k%001'),
    (f: string) => f.replace('key=k1', 'key=%ED%A0%80'),
    (f: string) => f.replace('key=k1&', ''),
    (f: string) => f.replace(`ns=${tenant}`, 'ns=%00'),
    (f: string) => f.replace(`ns=${tenant}`, `ns=${'n'.repeat(300)}`),
    (f: string) => f.replace(stale, 'ifVersion=-1'),
    (f: string) => f.replace(stale, 'ifVersion=1e308'),
    (f: string) => f.replace(stale, 'ifVersion=1&ifVersion=2'),
    (f: string) => f.replace(stale, ''),
    (f: string) => `${f}&extra=1`,
    (f: string) => `${f}&__proto__=1`,
    (f: string) => f.replace('value=%7B%22content%22%3A%22x%22%7D', 'value=%7B'),
    (f: string) => f.replace('value=%7B%22content%22%3A%22x%22%7D', 'value=%22x%00%22'),
    (f: string) => f.replace('version=1', 'version=0'),
  );
  const itemForm = fc
    .tuple(fc.constantFrom(...Object.keys(forms)), fieldDefects)
    .map(([page, defect]) => ({ page, body: defect(forms[page] as string), what: 'a bad field' }));
  // No version to make stale: each of these is refused by its fields alone.
  const other = fc.constantFrom(
    { page: '/job/undo', body: `changedBy=&${ns}&key=k1`, what: 'undo: no actor' },
    { page: '/job/undo', body: `changedBy=a%00b&${ns}&key=k1`, what: 'undo: NUL actor' },
    { page: '/job/undo', body: `changedBy=${'a'.repeat(201)}&${ns}&key=k1`, what: 'undo: long actor' },
    { page: '/job/undo', body: `changedBy=x&${ns}`, what: 'undo: no key' },
    { page: '/erase', body: `${ns}`, what: 'erase: not confirmed' },
    { page: '/erase', body: `${ns}&confirm=no`, what: 'erase: confirm=no' },
    { page: '/erase', body: `userId=%00&confirm=yes&confirm=yes`, what: 'erase: confirm twice' },
    { page: '/erase', body: `ns=%00&confirm=`, what: 'erase: NUL label, not confirmed' },
    { page: '/search', body: `${ns}&q=x&mode=fuzzy`, what: 'search: bad mode' },
    { page: '/search', body: `${ns}&q=x&q=y`, what: 'search: q twice' },
    { page: '/search', body: `${ns}&q=x&extra=1`, what: 'search: unknown field' },
    { page: '/search', body: `q=${'a'.repeat(8_001)}`, what: 'search: long query' },
  );
  // Every form, valid but sent without the page's origin, or as another type.
  const valid = fc.constantFrom(
    ...Object.entries(forms).map(([page, body]) => ({ page, body: body.replace(stale, 'ifVersion=1') })),
    { page: '/job/undo', body: `changedBy=reflection%3Afuzz&${ns}&key=k1` },
    { page: '/erase', body: `${ns}&confirm=yes` },
    { page: '/search', body: `${ns}&q=tea&mode=text` },
  );
  const unsafe = fc
    .tuple(
      valid,
      fc.constantFrom(
        { headers: {}, what: 'no origin' },
        { headers: { origin: 'http://evil.example' }, what: 'another origin' },
        { headers: { origin: 'null' }, what: 'origin null' },
        { headers: { referer: '%00' }, what: 'a bad referer' },
        { headers: { origin, 'content-type': 'text/plain' }, what: 'text/plain' },
        { headers: { origin, 'content-type': 'application/json' }, what: 'a form sent as JSON' },
      ),
    )
    .map(([f, h]) => ({ ...f, headers: h.headers as Record<string, string>, what: h.what }));
  return fc.oneof(itemForm, other, unsafe).map((f) => ({
    method: 'POST' as const,
    path: `${MEMORIES}${f.page}`,
    // The unsafe ones' headers replace the page's origin, not add to it.
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...('headers' in f ? f.headers : { origin }) },
    body: f.body,
    writes: true,
    what: `memories form ${f.page}: ${f.what}`,
  }));
}

const get = (paths: string[]) => paths.map((p) => `GET ${p}`);

/** `origin`: the API's URL, which a form's Origin header must name to be taken. */
export function adminRouteFuzz(tenant: string, origin: string): RouteFuzz[] {
  return [
    {
      routes: BOARD.flatMap(([method, pattern]) =>
        method === 'GET' ? get([`${API}${pattern}`]) : [`${method} ${API}${pattern}`],
      ),
      arbitrary: withHead(boardRequest()),
      weight: 4,
    },
    // Its static files answer HEAD too (@fastify/static adds it), the rest of the app does not.
    { routes: [...get(BOARD_PAGES), 'HEAD /admin/queues/*'], arbitrary: withHead(boardPageRequest()), weight: 1 },
    {
      routes: get(['', '/', '/item', '/erase', '/erase/confirm', '/style.css'].map((p) => `${MEMORIES}${p}`)),
      arbitrary: withHead(memoryPageRequest(tenant)),
      weight: 1,
    },
    {
      routes: ['/item/edit', '/item/delete', '/item/revert', '/job/undo', '/erase', '/search'].map(
        (p) => `POST ${MEMORIES}${p}`,
      ),
      arbitrary: memoryFormRequest(tenant, origin),
      weight: 3,
    },
  ];
}
