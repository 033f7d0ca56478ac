import { InputError } from '../../errors.js';
import { eraseInputSchema, type EraseParsed } from '../../memory/erase.js';
import type { Namespace } from '../../store/types.js';
import { parse } from '../parse.js';
import { checkTenantName } from '../tenancy.js';
import type { EraseTarget, Notice } from './forms.js';
import { html, type Html } from './html.js';
import { count, errorBox, noticeBox } from './layout.js';
import { BROWSER_PATH, eraseUrl, namespaceUrl } from './links.js';

/** Namespaces listed per prefix on the confirmation page. */
export const CONFIRM_LIST = 50;

/**
 * The erase a form asks for: a user (a context) or a prefix (`ns`, or `labels` one per line).
 * `keyed` (API_KEYS set): a tenant that no key could hold is refused, as the API refuses it from
 * an operator's key: otherwise the erase of nobody answered "erased, 0 items".
 */
export function eraseInputOf(t: EraseTarget, keyed: boolean): EraseParsed {
  const labels =
    t.labels !== undefined
      ? t.labels
          .split('\n')
          .map((l) => l.replace(/\r$/, ''))
          .filter((l) => l !== '')
      : t.ns;
  if (t.userId !== undefined && labels.length) throw new InputError('give a user id or a namespace prefix, not both');
  if (t.userId === undefined && labels.length === 0) throw new InputError('give a user id or a namespace prefix');
  if (keyed && t.userId !== undefined && t.tenant !== undefined) checkTenantName(t.tenant);
  const input =
    t.userId !== undefined
      ? { context: { userId: t.userId, ...(t.tenant !== undefined && { tenant: t.tenant }) } }
      : { namespacePrefix: labels };
  return parse(eraseInputSchema, input, 'erase request');
}

export function erasePage(v: { ns: string[]; notice: Notice; error?: string | undefined }): Html {
  return html`<h1>Erase</h1>
    ${noticeBox(v.notice)}${errorBox(v.error)}
    <p>
      Erasing removes memories and their history for good (the erasure itself is recorded, without content). The next
      page shows what would go and asks you to confirm.
    </p>
    <h2 id="user">A user</h2>
    <form method="get" action="${BROWSER_PATH}/erase/confirm">
      <p class="muted">
        Every namespace the memory kinds fill from the user's id, the user's buffered turns and queued reflections.
      </p>
      <div class="row">
        <div><label for="userId">User id</label><input id="userId" type="text" name="userId" required /></div>
        <div>
          <label for="tenant">Tenant (when namespaces start with it)</label
          ><input id="tenant" type="text" name="tenant" />
        </div>
        <div><button type="submit">Review the erase of this user…</button></div>
      </div>
    </form>
    <h2 id="prefix">A namespace prefix</h2>
    <form method="get" action="${BROWSER_PATH}/erase/confirm">
      <label for="labels">Labels, one per line</label>
      <textarea id="labels" name="labels" rows="4" required>${v.ns.join('\n')}</textarea>
      <div class="actions"><button type="submit">Review the erase of this prefix…</button></div>
    </form>`;
}

export interface ConfirmView {
  input: EraseParsed;
  /** Each prefix to erase, with the namespaces under it that hold memories now. */
  found: { prefix: Namespace; namespaces: Namespace[] }[];
}

export function confirmPage(v: ConfirmView): Html {
  const { input } = v;
  const what =
    'context' in input
      ? html`user
          <strong>${input.context.userId ?? ''}</strong
          >${input.context.tenant ? html` of tenant <strong>${input.context.tenant}</strong>` : null}`
      : html`the prefix <strong>${input.namespacePrefix.join(' / ')}</strong>`;
  // What to erase travels in the form's URL, as every admin form's target (forms.ts postedFields).
  const action =
    'context' in input
      ? eraseUrl([], { userId: input.context.userId, tenant: input.context.tenant })
      : eraseUrl(input.namespacePrefix);
  return html`<h1>Erase ${what}?</h1>
    <div class="error" role="alert">
      This cannot be undone: memories and history under these prefixes are
      deleted${'context' in input ? ", as are the user's buffered turns and queued reflections" : ''}.
    </div>
    <ul>
      ${v.found.map(
        (f) =>
          html`<li>
            <strong>${f.prefix.join(' / ')}</strong>:
            ${
              f.namespaces.length
                ? html`${f.namespaces.length >= CONFIRM_LIST ? `${CONFIRM_LIST} or more namespaces` : count(f.namespaces.length, 'namespace')}
                    with memories
                    <ul>
                      ${f.namespaces.map((n) => html`<li><a href="${namespaceUrl(n)}">${n.join(' / ')}</a></li>`)}
                    </ul>`
                : html`<span class="muted">no memories now</span>`
            }
          </li>`,
      )}
    </ul>
    <form method="post" action="${action}">
      <p>
        <input type="checkbox" id="confirm" name="confirm" value="yes" required />
        <label for="confirm" class="inline">I understand that this erases them permanently</label>
      </p>
      <div class="actions">
        <button type="submit" class="danger">Erase permanently</button> <a href="${eraseUrl()}">Cancel</a>
      </div>
    </form>`;
}
