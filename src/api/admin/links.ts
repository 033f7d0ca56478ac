import { QUEUE_NAMES } from '../../queue/schemas.js';

/** Where the memory browser is mounted (inside the admin scope, beside Bull Board). */
export const BROWSER_PATH = '/admin/memories';

type Params = Record<string, string | number | undefined>;

/** `?ns=a&ns=b&...`: a namespace travels as one `ns` per label, so labels may hold any text. */
function query(ns: readonly string[], params: Params = {}): string {
  const q = new URLSearchParams();
  for (const label of ns) q.append('ns', label);
  for (const [name, value] of Object.entries(params)) if (value !== undefined) q.append(name, String(value));
  const text = q.toString();
  return text ? `?${text}` : '';
}

export const namespaceUrl = (ns: readonly string[], params?: Params) => `${BROWSER_PATH}${query(ns, params)}`;
export const itemUrl = (ns: readonly string[], key: string, params: Params = {}) =>
  `${BROWSER_PATH}/item${query(ns, { key, ...params })}`;
/** Where a form posts: the memory or prefix it acts on travels in the URL (forms.ts postedFields). */
export const formUrl = (path: string, ns: readonly string[], params?: Params) =>
  `${BROWSER_PATH}${path}${query(ns, params)}`;
export const eraseUrl = (ns: readonly string[] = [], params?: Params) => `${BROWSER_PATH}/erase${query(ns, params)}`;
/** A prefix's erase to confirm, the labels as they are (the erase page's text box splits at line breaks). */
export const confirmEraseUrl = (ns: readonly string[]) => `${BROWSER_PATH}/erase/confirm${query(ns)}`;

/**
 * The job behind a history actor: reflections write as `reflection:<job id>@<created ms>` and
 * consolidation passes as `consolidation:<job id>`, the queue's name first
 * (src/app/reflection-job.ts, scheduler.ts); a reflection of shard n > 0 as
 * `reflection-<n>:<job id>@<created ms>`. Any other actor (`api`, `admin`, `revert:...`) is no
 * job. Bull Board shows a job by its id: the creation time only tells two jobs of one id apart.
 */
export function jobOf(actor: string): { queue: string; id: string } | null {
  const at = actor.indexOf(':');
  const queue = actor.slice(0, at);
  const known = (QUEUE_NAMES as string[]).includes(queue) || /^reflection-[1-9]\d*$/.test(queue);
  const id = actor.slice(at + 1).replace(/@\d+$/, '');
  if (at < 1 || !known || id === '') return null;
  return { queue, id };
}

/** Bull Board 9's page of one job: `<base>/queue/<queue name>/<job id>` (its UI router's path). */
export const jobUrl = (boardPath: string, job: { queue: string; id: string }) =>
  `${boardPath}/queue/${encodeURIComponent(job.queue)}/${encodeURIComponent(job.id)}`;
