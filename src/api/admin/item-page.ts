import { STORED_VALUE_BOUNDS } from '../../store/schemas.js';
import type { HistoryEntry, MemoryItem } from '../../store/types.js';
import { DIFF_ROWS, documentDiff, jsonPreview } from './diff.js';
import type { Notice } from './forms.js';
import { html, type Html } from './html.js';
import { breadcrumb, errorBox, noticeBox, when } from './layout.js';
import { formUrl, itemUrl, jobOf, jobUrl } from './links.js';
import { pager } from './namespace-page.js';

export const HISTORY_PAGE = 50;

export interface ItemView {
  ns: string[];
  key: string;
  /** Null when it was deleted or expired (its history may still be there). */
  item: MemoryItem | null;
  history: HistoryEntry[];
  hoffset: number;
  /** How many history rows a page holds: fewer than HISTORY_PAGE when their documents are large. */
  hsize: number;
  boardPath: string;
  notice: Notice;
  error?: string | undefined;
  /** The edit that was refused, shown back in the editor rather than lost. */
  draft?: string | undefined;
}

/** One memory: what it holds now, an editor, and its history with the changes row by row. */
export function itemPage(v: ItemView): Html {
  const { item } = v;
  // The version a write compares with: what this page shows (0: there is none now).
  const current = item?.version ?? 0;
  return html` ${breadcrumb(v.ns, 'link')}
    <h1>${v.key}</h1>
    ${noticeBox(v.notice)}${errorBox(v.error)}
    ${item ? details(item) : html`<p class="badge bad">This memory does not exist now (deleted or expired).</p>`}
    ${item ? editor(v, item) : null}
    <h2 id="history">History</h2>
    ${v.history.length ? timeline(v, current) : html`<p class="muted">No history.</p>`}
    ${pager(v.hoffset, v.hsize, v.history.length >= v.hsize, (o) => itemUrl(v.ns, v.key, { hoffset: o }), 'history')}`;
}

function details(item: MemoryItem): Html {
  return html`<dl class="meta">
      <dt>Kind</dt>
      <dd>${item.kind}</dd>
      <dt>Version</dt>
      <dd>${item.version}</dd>
      <dt>Valid</dt>
      <dd>
        from ${when(item.validFrom)}
        ${
          item.invalidAt
            ? html`<span class="badge bad">no longer holds since ${when(item.invalidAt)}</span>`
            : html`<span class="badge">holds now</span>`
        }
      </dd>
      <dt>Created</dt>
      <dd>${when(item.createdAt)}</dd>
      <dt>Updated</dt>
      <dd>${when(item.updatedAt)}</dd>
      <dt>Expires</dt>
      <dd>${item.expiresAt ? when(item.expiresAt) : 'never'}</dd>
    </dl>
    <h2 id="current">Value</h2>
    <pre>${JSON.stringify(item.value, null, 2)}</pre>`;
}

function editor(v: ItemView, item: MemoryItem): Html {
  const text = v.draft ?? editorText(item.value);
  const rows = Math.min(24, Math.max(4, text.split('\n').length + 1));
  return html`<h2 id="edit">Edit</h2>
    <form method="post" action="${formUrl('/item/edit', v.ns, { key: v.key })}">
      <input type="hidden" name="ifVersion" value="${item.version}" />
      <label for="edit-value"
        >Value (a JSON object; saved as version ${item.version + 1} if nobody changed it since version
        ${item.version})</label
      >
      <textarea id="edit-value" name="value" rows="${rows}" spellcheck="false">${text}</textarea>
      <div class="actions"><button type="submit">Save</button></div>
    </form>
    <form method="post" action="${formUrl('/item/delete', v.ns, { key: v.key })}" class="actions">
      <input type="hidden" name="ifVersion" value="${item.version}" />
      <button type="submit" class="danger">Delete this memory</button>
    </form>`;
}

/**
 * The value as the editor shows it: indented, unless that passes what the store holds as JSON
 * (1,000,000 characters); then on one line. Indenting a list of 100,000 small objects made an
 * 800 KB value 2.6 million characters, which its form could not send back.
 */
function editorText(value: Record<string, unknown>): string {
  const pretty = JSON.stringify(value, null, 2);
  return pretty.length <= (STORED_VALUE_BOUNDS.maxChars ?? Infinity) ? pretty : JSON.stringify(value);
}

function timeline(v: ItemView, current: number): Html {
  return html`<ol class="timeline">
    ${v.history.map((h) => {
      const job = jobOf(h.actor);
      return html`<li>
        <div>
          <strong>v${h.version} ${h.op}</strong> by
          ${
            job
              ? html`<a href="${jobUrl(v.boardPath, job)}" title="the ${job.queue} job in Bull Board">${h.actor}</a>`
              : h.actor
          }${h.threadId ? html`, thread ${h.threadId}` : null},
          ${when(h.at)}
        </div>
        ${diffTable(h)}
        <div class="actions">
          ${
            // A document to go back to, other than the one the memory has now.
            h.after !== null && !(v.item && h.version === current)
              ? html`<form method="post" action="${formUrl('/item/revert', v.ns, { key: v.key })}" class="inline">
                  <input type="hidden" name="version" value="${h.version}" />
                  <input type="hidden" name="ifVersion" value="${current}" />
                  <button type="submit" class="secondary">Revert to v${h.version}</button>
                </form>`
              : null
          }
          ${
            job
              ? html`<form
                  method="post"
                  action="${formUrl('/job/undo', v.ns, { key: v.key, changedBy: h.actor })}"
                  class="inline"
                >
                  <button type="submit" class="secondary">Undo everything ${h.actor} changed</button>
                </form>`
              : null
          }
        </div>
      </li>`;
    })}
  </ol>`;
}

function diffTable(h: HistoryEntry): Html {
  // Only an expiry leaves a change with neither document: it takes the key's documents along.
  if (h.before === null && h.after === null)
    return html`<p class="muted">Not kept: the memory expired, and its documents went with it.</p>`;
  const { rows, more } = documentDiff(h.before, h.after);
  if (rows.length === 0) return html`<p class="muted">No change to the document.</p>`;
  return html`<table class="diff">
      <caption class="muted">
        Changes in v${h.version}
      </caption>
      <thead>
        <tr>
          <th scope="col">Field</th>
          <th scope="col">Change</th>
          <th scope="col">Before</th>
          <th scope="col">After</th>
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (r) =>
            html`<tr class="${r.change}">
              <td class="json">${r.path}</td>
              <td class="change">${r.change}</td>
              <td class="json">${'before' in r ? jsonPreview(r.before) : ''}</td>
              <td class="json">${'after' in r ? jsonPreview(r.after) : ''}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${more ? html`<p class="muted">Only the first ${DIFF_ROWS} changes of v${h.version} are shown.</p>` : null}`;
}
