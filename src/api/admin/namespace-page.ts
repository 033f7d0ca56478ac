import { HYBRID_CANDIDATES } from '../../store/search.js';
import type { Namespace, SearchItem } from '../../store/types.js';
import { jsonPreview } from './diff.js';
import type { Notice } from './forms.js';
import { html, type Html } from './html.js';
import { breadcrumb, errorBox, noticeBox, when } from './layout.js';
import { confirmEraseUrl, formUrl, itemUrl, namespaceUrl } from './links.js';

export const CHILDREN_PAGE = 100;
export const ITEMS_PAGE = 25;

export interface NamespaceView {
  ns: string[];
  /** The namespaces under `ns`, cut one label deeper (listNamespaces with maxDepth). */
  children: Namespace[];
  nsOffset: number;
  items: SearchItem[];
  offset: number;
  /** How many memories a page holds: fewer than ITEMS_PAGE when they are large. */
  size: number;
  q?: string | undefined;
  mode: 'hybrid' | 'vector' | 'text';
  /** As typed (the datetime-local field shows it back). */
  asOf?: string | undefined;
  error?: string | undefined;
  /** The search failed as hybrid for the size of the memories: text and vector page instead. */
  hybridTooLarge?: boolean | undefined;
  notice: Notice;
}

/** A prefix: the labels one level down, then the memories under it, searchable. */
export function namespacePage(v: NamespaceView): Html {
  const depth = v.ns.length;
  const below = v.children.filter((c) => c.length > depth);
  const title = depth ? v.ns.join(' / ') : 'All namespaces';
  const searchParams = { q: v.q, mode: v.q ? v.mode : undefined, asOf: v.asOf };
  // The store fuses a hybrid search's best 50 and refuses a page past them: no link to one.
  const pastHybrid = v.q !== undefined && v.mode === 'hybrid' && v.offset + 2 * v.size > HYBRID_CANDIDATES;
  const childList = below.length
    ? html`<ul class="children">
        ${below.map((c) => html`<li><a href="${namespaceUrl(c)}">${c[depth]}</a></li>`)}
      </ul>`
    : html`<p class="muted">No namespaces below this one.</p>`;
  return html` ${breadcrumb(v.ns)}
    <h1>${title}</h1>
    ${noticeBox(v.notice)}${errorBox(v.error)}
    <h2 id="below">Namespaces below</h2>
    ${childList}
    ${pager(
      v.nsOffset,
      CHILDREN_PAGE,
      v.children.length >= CHILDREN_PAGE,
      (o) => namespaceUrl(v.ns, { ...searchParams, nsOffset: o }),
      'namespaces',
    )}
    <h2 id="memories">Memories ${depth ? 'under this prefix' : 'in every namespace'}</h2>
    <form method="post" action="${formUrl('/search', v.ns)}" role="search">
      <div class="row">
        <div>
          <label for="q">Search</label
          ><input id="q" type="search" name="q" value="${v.q ?? ''}" placeholder="words or a question" />
        </div>
        <div>
          <label for="mode">Ranking</label
          ><select id="mode" name="mode">
            ${(['hybrid', 'vector', 'text'] as const).map(
              (m) => html`<option value="${m}" ${m === v.mode ? html` selected` : null}>${m}</option>`,
            )}
          </select>
        </div>
        <div>
          <label for="asOf">As of (UTC)</label
          ><input id="asOf" type="datetime-local" step="1" name="asOf" value="${v.asOf ?? ''}" />
        </div>
        <div><button type="submit">Search</button></div>
      </div>
      <p class="muted">
        Without “as of”: what holds now (memories invalidated since are left out). With it: what held then.
      </p>
    </form>
    ${itemTable(v)}
    ${pager(
      v.offset,
      v.size,
      v.items.length >= v.size && !pastHybrid,
      (o) => namespaceUrl(v.ns, { ...searchParams, offset: o }),
      'memories',
    )}
    ${
      v.hybridTooLarge
        ? html`<p>
            Rank by <a href="${namespaceUrl(v.ns, { ...searchParams, mode: 'text' })}">text</a> or
            <a href="${namespaceUrl(v.ns, { ...searchParams, mode: 'vector' })}">vector</a>, which read a page at a
            time.
          </p>`
        : null
    }
    ${
      pastHybrid && v.items.length >= v.size
        ? html`<p class="muted">
            A hybrid search ranks the best ${HYBRID_CANDIDATES} memories. To see more, rank by
            <a href="${namespaceUrl(v.ns, { ...searchParams, mode: 'text' })}">text</a> or
            <a href="${namespaceUrl(v.ns, { ...searchParams, mode: 'vector' })}">vector</a>.
          </p>`
        : null
    }
    ${depth ? html`<p><a href="${confirmEraseUrl(v.ns)}">Erase everything under this prefix…</a></p>` : null}`;
}

function itemTable(v: NamespaceView): Html {
  if (v.items.length === 0) return html`<p class="muted">No memories${v.q ? ' match' : ''}.</p>`;
  const depth = v.ns.length;
  return html`<table>
    <thead>
      <tr>
        <th scope="col">Key</th>
        <th scope="col">Namespace</th>
        <th scope="col">Kind</th>
        <th scope="col">Value</th>
        <th scope="col">Version</th>
        <th scope="col">Valid</th>
        ${v.q ? html`<th scope="col">Score</th>` : null}
      </tr>
    </thead>
    <tbody>
      ${v.items.map(
        (i) =>
          html`<tr>
            <td><a href="${itemUrl(i.namespace, i.key)}">${i.key}</a></td>
            <td>
              ${depth < i.namespace.length ? i.namespace.slice(depth).join(' / ') : html`<span class="muted">here</span>`}
            </td>
            <td>${i.kind}</td>
            <td class="value">${jsonPreview(i.value, 200)}</td>
            <td>${i.version}</td>
            <td>
              from
              ${when(i.validFrom)}${i.invalidAt ? html`<br /><span class="badge bad">invalid since ${when(i.invalidAt)}</span>` : null}
            </td>
            ${v.q ? html`<td>${i.score === null ? '—' : i.score.toFixed(3)}</td>` : null}
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** Previous and next links; `more` when there may be a next page (this one is full). */
export function pager(offset: number, size: number, more: boolean, url: (offset: number) => string, what: string) {
  if (offset === 0 && !more) return null;
  return html`<nav class="pager" aria-label="${what} pages">
    ${offset > 0 ? html`<a href="${url(Math.max(0, offset - size))}">← Previous ${what}</a>` : null}
    ${more ? html`<a href="${url(offset + size)}">Next ${what} →</a>` : null}
  </nav>`;
}
