import { kindsResponse, recallResponse, toolApplyResponse, type ToolApplyInput } from '../api/schemas.js';
import { defaultKinds } from '../memory/kinds.js';
import type { MemoryToolBackend } from '../tools/backend.js';
import { checkedBackend } from '../tools/checked-backend.js';
import { createToolSession, type MemoryToolsOptions } from '../tools/create-session.js';
import type { ToolSession } from '../tools/session.js';
import type { Transport } from './http.js';

/**
 * The tool session's two calls over the API: `search` is a recall of the session's kinds (the
 * in-process backend's ranking, the same route), `apply` is `POST /v1/tools/apply`, where the
 * service checks the operation again and writes it as the in-process backend does. A write is
 * never retried: an insert sent twice would store its memory twice.
 */
export class HttpToolBackend implements MemoryToolBackend {
  constructor(private readonly http: Transport) {}

  async search(q: Parameters<MemoryToolBackend['search']>[0]) {
    const found = await this.http.send({
      method: 'POST',
      path: '/v1/recall',
      body: { context: q.context, query: q.query, kinds: q.kinds, limit: q.limit },
      answer: recallResponse,
      idempotent: true,
    });
    return found.memories.map(({ namespace, key, kind, version, value, updatedAt }) => ({
      namespace,
      key,
      kind,
      version,
      value,
      updatedAt,
    }));
  }

  apply({ context, op, actor }: Parameters<MemoryToolBackend['apply']>[0]) {
    // A target goes by its version: the document the model was shown stays here.
    const sent =
      op.op === 'insert'
        ? op
        : {
            ...op,
            target: {
              namespace: op.target.namespace,
              key: op.target.key,
              kind: op.target.kind,
              version: op.target.version,
            },
          };
    return this.http.send({
      method: 'POST',
      path: '/v1/tools/apply',
      body: { context, op: sent, actor } satisfies ToolApplyInput,
      answer: toolApplyResponse,
      idempotent: false,
    });
  }
}

/**
 * The HTTP client's tool session: the SDK's session over `HttpToolBackend`, checked once before
 * its first call against the kinds the service serves (`GET /v1/kinds`), as the SDK checks
 * against the kinds the service published.
 */
export function httpToolSession(http: Transport, options: MemoryToolsOptions): ToolSession {
  const kinds = options.kinds ?? defaultKinds;
  const serviceKinds = async () =>
    (await http.send({ method: 'GET', path: '/v1/kinds', answer: kindsResponse, idempotent: true })).kinds;
  return createToolSession(checkedBackend(new HttpToolBackend(http), kinds, serviceKinds), options, defaultKinds);
}
