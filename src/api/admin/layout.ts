import { html, type Html, type HtmlValue } from './html.js';
import { BROWSER_PATH, eraseUrl, namespaceUrl } from './links.js';
import type { Notice } from './forms.js';

/** The shell of every page: a skip link, the admin navigation, one `main`. */
export function page(title: string, body: Html, boardPath: string): Html {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · engram admin</title>
        <link rel="stylesheet" href="${BROWSER_PATH}/style.css" />
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header>
          <nav aria-label="Admin">
            <strong>engram admin</strong>
            <a href="${BROWSER_PATH}">Memories</a>
            <a href="${eraseUrl()}">Erase</a>
            <a href="${boardPath}">Queues (Bull Board)</a>
          </nav>
        </header>
        <main id="main" tabindex="-1">${body}</main>
      </body>
    </html>`;
}

/** `All / a / b`: each label a link to its prefix; the last one is where we are. */
export function breadcrumb(ns: readonly string[], last: 'link' | 'current' = 'current'): Html {
  const parts = ns.map((label, i) =>
    i === ns.length - 1 && last === 'current'
      ? html` / <span aria-current="page">${label}</span>`
      : html` / <a href="${namespaceUrl(ns.slice(0, i + 1))}">${label}</a>`,
  );
  return html`<nav class="crumbs" aria-label="Namespace">
    <a href="${namespaceUrl([])}">All namespaces</a>${parts}
  </nav>`;
}

export const errorBox = (message: string | null | undefined) =>
  message ? html`<div class="error" role="alert"><strong>Not done.</strong> ${message}</div>` : null;

/** What the last POST did, from the codes its redirect carried. */
export function noticeBox(n: Notice): HtmlValue {
  const text =
    n.done === 'saved'
      ? `Saved as version ${n.version}.`
      : n.done === 'deleted'
        ? 'Deleted. Its history is kept below: revert to bring it back.'
        : n.done === 'reverted'
          ? `Reverted: the memory is now at version ${n.version}.`
          : n.done === 'undone'
            ? `Undone: ${count(n.restored, 'memory', 'memories')} put back, ${n.deleted ?? 0} deleted.`
            : n.done === 'erased'
              ? `Erased ${count(n.namespaces, 'namespace')}: ${count(n.items, 'memory', 'memories')}, ${count(n.historyRows, 'history row')}, ${count(n.threads, 'thread')}, ${count(n.jobs, 'reflection job')}.`
              : null;
  return text ? html`<div class="notice" role="status">${text}</div>` : null;
}

export const count = (n: number | undefined, one: string, many = `${one}s`) => `${n ?? 0} ${n === 1 ? one : many}`;

/** A time as UTC, readable, with the machine form in `datetime`. */
export function when(date: Date | null): Html {
  if (!date) return html`<span class="muted">—</span>`;
  const iso = date.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')} UTC</time>`;
}

export const STYLE = `
:root { color-scheme: light; --fg: #1d2330; --muted: #5f6878; --line: #d5dae3; --accent: #1f5fbf;
  --bad: #a11d2b; --bad-bg: #fdecee; --good-bg: #e8f5ec; --add: #e6f4ea; --del: #fbe9eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
header { background: #243047; color: #fff; padding: .6rem 1.5rem; }
header nav { display: flex; gap: 1.25rem; align-items: baseline; }
header a { color: #dfe8ff; }
main { max-width: 72rem; padding: 1rem 1.5rem 3rem; margin: 0 auto; }
main:focus { outline: none; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible {
  outline: 3px solid #f0a500; outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: .5rem; background: #fff; padding: .3rem .6rem; z-index: 1; }
h1 { font-size: 1.5rem; margin: .8rem 0; word-break: break-all; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .6rem; }
.crumbs { color: var(--muted); margin-top: .4rem; }
.muted { color: var(--muted); }
time { white-space: nowrap; }
.error { background: var(--bad-bg); border-left: 4px solid var(--bad); padding: .6rem .9rem; margin: .8rem 0; }
.notice { background: var(--good-bg); border-left: 4px solid #2e7d32; padding: .6rem .9rem; margin: .8rem 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; background: #f4f6fa; }
td.value, td.json { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; word-break: break-word; }
pre { background: #f4f6fa; padding: .75rem; overflow: auto; max-height: 24rem; font-size: 13px; }
form.inline { display: inline; }
.row { display: flex; gap: .8rem; flex-wrap: wrap; align-items: end; margin: .5rem 0; }
label { display: block; font-weight: 600; font-size: .9rem; }
label.inline { display: inline; }
input, select, textarea, button { font: inherit; }
input[type=search], input[type=text] { min-width: 18rem; }
input, select, textarea { padding: .3rem .4rem; border: 1px solid #9aa3b2; border-radius: 3px; }
textarea { width: 100%; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
button { padding: .35rem .8rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 3px; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
ul.children { columns: 3 14rem; padding-left: 1.2rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
ol.timeline { list-style: none; padding: 0; border-left: 3px solid var(--line); margin-left: .4rem; }
ol.timeline > li { padding: .2rem 0 1rem 1rem; position: relative; }
ol.timeline > li::before { content: ""; position: absolute; left: -.55rem; top: .55rem; width: .8rem; height: .8rem;
  border-radius: 50%; background: var(--accent); }
.diff td.change { width: 6rem; }
.diff tr.added { background: var(--add); }
.diff tr.removed { background: var(--del); }
.badge { display: inline-block; padding: 0 .4rem; border-radius: 3px; background: #eef1f6; font-size: .85rem; }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.actions { display: flex; gap: .6rem; flex-wrap: wrap; margin-top: .4rem; }
.pager { margin: .8rem 0; display: flex; gap: 1rem; }
`;
