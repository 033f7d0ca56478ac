import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ConflictError, InputError, LimitError } from '../../errors.js';
import type { Eraser } from '../../memory/erase.js';
import { namespacesOfContext } from '../../memory/context-namespaces.js';
import type { RecallKind } from '../../memory/recall.js';
import type { Conflict } from '../../store/change-set.js';
import type { StoreService } from '../../store/store-service.js';
import type { Namespace } from '../../store/types.js';
import { errorHandler } from '../errors.js';
import { parse } from '../parse.js';
import { confirmPage, CONFIRM_LIST, eraseInputOf, erasePage } from './erase-page.js';
import {
  asOfIso,
  browseQuery,
  deleteForm,
  editForm,
  eraseForm,
  eraseQuery,
  formFields,
  itemQuery,
  postedFields,
  queryFields,
  revertForm,
  searchForm,
  sameOrigin,
  undoForm,
  type Fields,
  type Notice,
} from './forms.js';
import { fittedPage } from './fit-page.js';
import { html, type Html } from './html.js';
import { HISTORY_PAGE, itemPage } from './item-page.js';
import { errorBox, page, STYLE } from './layout.js';
import { eraseUrl, itemUrl, namespaceUrl } from './links.js';
import { CHILDREN_PAGE, ITEMS_PAGE, namespacePage } from './namespace-page.js';
import type { Tenancy } from '../tenancy.js';

export interface MemoryBrowserDeps {
  store: StoreService;
  eraser: Eraser;
  kinds: () => readonly RecallKind[];
  /** Where Bull Board is mounted: history rows link to the jobs that wrote them. */
  boardPath: string;
  /** With API_KEYS set, an erase's tenant must be a tenant name, as on `POST /v1/erase`. */
  tenancy: Pick<Tenancy, 'keyed'>;
}

/** Who the admin pages' writes are recorded as in history (`revert:admin` for reverts). */
const ACTOR = 'admin';
/**
 * An edit form's body: the editor's text of a value the store holds (at most 1,000,000 characters
 * of JSON, item-page.ts keeps it so) is up to 9 bytes a character once form-encoded (a character
 * of 3 UTF-8 bytes, each `%XX`). The API's 4 MiB refused a save of an 800 KB memory unchanged.
 */
const FORM_MAX_BYTES = 10 * 1024 * 1024;
/** Pages hold people's memories: never cached, framed, or given scripts (there are none). */
const HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

/**
 * The memory browser (`/admin/memories`): server-rendered pages over the store API, the eraser
 * and history, registered inside the admin scope so Bull Board's basic auth covers it. Reads
 * never renew TTLs (an operator looking is not the application recalling). Every POST answers
 * with a redirect to a page (POST-redirect-GET), or with the page again naming what was refused.
 */
export function memoryBrowser(deps: MemoryBrowserDeps) {
  const { store, boardPath } = deps;
  const send = (reply: FastifyReply, title: string, body: Html, status = 200) =>
    reply
      .status(status)
      .type('text/html; charset=utf-8')
      .send(page(title, body, boardPath).text);

  async function showItem(
    reply: FastifyReply,
    at: { ns: string[]; key: string; hoffset?: number | undefined },
    extra: { notice?: Notice; error?: string; draft?: string; status?: number } = {},
  ) {
    const hoffset = at.hoffset ?? 0;
    const [item, { rows: history, size: hsize }] = await Promise.all([
      store.get({ namespace: at.ns, key: at.key, refreshTtl: false }),
      fittedPage(HISTORY_PAGE, (limit) => store.history({ namespace: at.ns, key: at.key, limit, offset: hoffset })),
    ]);
    if (!item && history.length === 0 && hoffset === 0) {
      const body = html`<h1>No such memory</h1>
        <p>Nothing has ever been stored at this key. <a href="${namespaceUrl(at.ns)}">Back to the namespace</a>.</p>`;
      return send(reply, 'No such memory', body, 404);
    }
    const view = { ...at, item, history, hoffset, hsize, boardPath, notice: extra.notice ?? {}, ...extra };
    return send(reply, at.key, itemPage(view), extra.status);
  }

  /** A store refusal shown on the memory's page; anything else goes on to the error handler. */
  function refusal(err: unknown, what: string): { error: string; status: number } {
    if (err instanceof ConflictError) {
      const conflicts = (err.details as { conflicts?: Conflict[] } | undefined)?.conflicts ?? [];
      const first = conflicts[0];
      if (first?.reason === 'gone')
        return {
          error: `${what}: the document it would put back is gone: the memory expired or was erased.`,
          status: 409,
        };
      const detail =
        first && first.reason !== 'changed'
          ? ` (you had version ${first.expected}; it is now at version ${first.actual})`
          : first
            ? ` (it is now at version ${first.actual})`
            : '';
      const more = conflicts.length > 1 ? ` ${conflicts.length} memories changed since; nothing was written.` : '';
      return { error: `${what}: it was changed since you loaded this page${detail}.${more}`, status: 409 };
    }
    if (err instanceof InputError) return { error: `${what}: ${err.message}`, status: 400 };
    throw err;
  }

  return async (scope: FastifyInstance) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: FORM_MAX_BYTES },
      (_request, body, done) => done(null, formFields(body as string)),
    );
    scope.addHook('onRequest', async (request, reply) => {
      if (request.method !== 'POST' || sameOrigin(request)) return;
      const body = html`<h1>Refused</h1>
        <p>
          This form did not come from a page of this site (no matching <code>Origin</code> or
          <code>Referer</code> header). Open the page and submit it again.
        </p>`;
      return send(reply, 'Refused', body, 403);
    });
    scope.addHook('onSend', async (_request, reply, payload) => {
      reply.headers(HEADERS);
      return payload;
    });
    scope.setErrorHandler((err, request, reply) => {
      if (!(err instanceof InputError)) return errorHandler(err as Error, request, reply);
      const body = html`<h1>Not done</h1>
        ${errorBox(err.message)}
        <p>Go back, correct it and try again.</p>`;
      return send(reply, 'Not done', body, 400);
    });
    const form = (request: FastifyRequest): Fields => {
      if (!request.headers['content-type']?.startsWith('application/x-www-form-urlencoded'))
        throw new InputError('expected a form (application/x-www-form-urlencoded)');
      return postedFields(queryFields(request), request.body as Fields);
    };
    const query = <S extends z.ZodType>(schema: S, request: FastifyRequest) =>
      parse(schema, queryFields(request), 'query string');

    scope.get('/style.css', async (_request, reply) => reply.type('text/css; charset=utf-8').send(STYLE));

    scope.get('/', async (request, reply) => {
      const q = query(browseQuery, request);
      const children = await store.listNamespaces({
        prefix: q.ns,
        maxDepth: Math.min(16, q.ns.length + 1),
        limit: CHILDREN_PAGE,
        offset: q.nsOffset ?? 0,
      });
      let items: Awaited<ReturnType<StoreService['search']>> = [];
      let size = ITEMS_PAGE;
      let error: string | undefined;
      let hybridTooLarge = false;
      try {
        ({ rows: items, size } = await fittedPage(ITEMS_PAGE, (limit) =>
          store.search({
            namespacePrefix: q.ns,
            query: q.q,
            mode: q.q === undefined ? undefined : q.mode,
            asOf: q.asOf === undefined ? undefined : asOfIso(q.asOf),
            limit,
            offset: q.offset ?? 0,
            refreshTtl: false,
          }),
        ));
      } catch (err) {
        // A hybrid search reads each ranking's best 50 whole, whatever the page's size: large
        // memories pass the store's answer bound at any page, where text and vector rank a page
        // at a time. Said as such, with links to them, rather than as the store's refusal.
        hybridTooLarge = err instanceof LimitError && q.q !== undefined && q.mode === 'hybrid';
        ({ error } = hybridTooLarge
          ? {
              error:
                'Search failed: these memories are too large for a hybrid search, which reads the best 50 of each ranking whole.',
            }
          : refusal(err, 'Search failed'));
      }
      const offset = q.offset ?? 0;
      const view = { ...q, nsOffset: q.nsOffset ?? 0, offset, size, children, items, error, hybridTooLarge, notice: q };
      return send(reply, q.ns.length ? q.ns.join(' / ') : 'Memories', namespacePage(view));
    });

    scope.post('/search', async (request, reply) => {
      const f = parse(searchForm, form(request), 'form');
      const params = { q: f.q, mode: f.q === undefined ? undefined : f.mode, asOf: f.asOf };
      return reply.redirect(namespaceUrl(f.ns, params), 303);
    });

    scope.get('/item', async (request, reply) => {
      const q = query(itemQuery, request);
      return showItem(reply, q, { notice: q });
    });

    // The route's limit too, not only its parser's: the 413 names the route's (json-body.ts).
    scope.post('/item/edit', { bodyLimit: FORM_MAX_BYTES }, async (request, reply) => {
      const f = parse(editForm, form(request), 'form');
      const at = { ns: f.ns, key: f.key };
      let value: unknown;
      try {
        value = JSON.parse(f.value);
      } catch (err) {
        const error = `Not saved: the value is not JSON (${(err as Error).message}).`;
        return showItem(reply, at, { error, draft: f.value, status: 400 });
      }
      try {
        const item = await store.put({ namespace: f.ns, key: f.key, value, ifVersion: f.ifVersion, actor: ACTOR });
        return reply.redirect(itemUrl(f.ns, f.key, { done: 'saved', version: item.version }), 303);
      } catch (err) {
        const r = refusal(err, 'Not saved');
        // The refused text stays in the editor, now over the current version: saving again overwrites.
        return showItem(reply, at, { ...r, error: `${r.error} Your text is kept below.`, draft: f.value });
      }
    });

    scope.post('/item/delete', async (request, reply) => {
      const f = parse(deleteForm, form(request), 'form');
      try {
        await store.delete({ namespace: f.ns, key: f.key, ifVersion: f.ifVersion, actor: ACTOR });
        return reply.redirect(itemUrl(f.ns, f.key, { done: 'deleted' }), 303);
      } catch (err) {
        return showItem(reply, f, refusal(err, 'Not deleted'));
      }
    });

    scope.post('/item/revert', async (request, reply) => {
      const f = parse(revertForm, form(request), 'form');
      try {
        const item = await store.revert({
          namespace: f.ns,
          key: f.key,
          version: f.version,
          ifVersion: f.ifVersion,
          actor: ACTOR,
        });
        return reply.redirect(itemUrl(f.ns, f.key, { done: 'reverted', version: item.version }), 303);
      } catch (err) {
        return showItem(reply, f, refusal(err, 'Not reverted'));
      }
    });

    scope.post('/job/undo', async (request, reply) => {
      const f = parse(undoForm, form(request), 'form');
      try {
        const undone = await store.revertChanges({ changedBy: f.changedBy, actor: ACTOR });
        return reply.redirect(itemUrl(f.ns, f.key, { done: 'undone', ...undone }), 303);
      } catch (err) {
        return showItem(reply, f, refusal(err, `Not undone (${f.changedBy})`));
      }
    });

    scope.get('/erase', async (request, reply) => {
      const q = query(eraseQuery, request);
      return send(reply, 'Erase', erasePage({ ns: q.ns, notice: q }));
    });

    scope.get('/erase/confirm', async (request, reply) => {
      const input = eraseInputOf(query(eraseQuery, request), deps.tenancy.keyed);
      const { prefixes, namespaces } =
        'context' in input
          ? namespacesOfContext(deps.kinds(), input.context)
          : { prefixes: [input.namespacePrefix], namespaces: [] };
      const listed = async (prefix: Namespace, exact: boolean) => {
        const under = await store.listNamespaces({ prefix, limit: CONFIRM_LIST });
        // A namespace the erase takes alone (an org's beside its users'): not those under it.
        return { prefix, namespaces: exact ? under.filter((ns) => ns.length === prefix.length) : under };
      };
      const found = await Promise.all([
        ...prefixes.map((prefix) => listed(prefix, false)),
        ...namespaces.map((ns) => listed(ns, true)),
      ]);
      return send(reply, 'Confirm erase', confirmPage({ input, found }));
    });

    scope.post('/erase', async (request, reply) => {
      const f = parse(eraseForm, form(request), 'form');
      const { jobs, ...counts } = await deps.eraser.eraseParsed(eraseInputOf(f, deps.tenancy.keyed), ACTOR);
      const { namespaces, items, historyRows, threads } = counts;
      return reply.redirect(eraseUrl([], { done: 'erased', namespaces, items, historyRows, threads, jobs }), 303);
    });
  };
}
