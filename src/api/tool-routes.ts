import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Embedder } from '../llm/embedder.js';
import { jsonSchema } from '../memory/extraction-prompt.js';
import type { MemoryKind } from '../memory/kinds.js';
import type { Recall } from '../memory/recall.js';
import type { StoreService } from '../store/store-service.js';
import { LocalToolBackend } from '../tools/local-backend.js';
import { checkToolOp } from '../tools/op-check.js';
import { refusal, refusals, untenanted } from './route-schema.js';
import { kindsResponse, toolApplyInputSchema, toolApplyResponse } from './schemas.js';
import type { Tenancy } from './tenancy.js';

export interface ToolRouteDeps {
  /** The service's kinds and embedder: a tool's write is embedded and routed as a reflection's. */
  tools: { kinds: readonly MemoryKind[]; embedder: Embedder };
  recall: Recall;
  store: StoreService;
  tenancy: Tenancy;
}

const tags = ['memories'];

/**
 * The memory tools' remote half (docs/memory-tools.md): a tool session in another process (the
 * HTTP client's `memoryTools`) searches with `POST /v1/recall` and writes each `manage_memory`
 * operation here, where `LocalToolBackend.apply` runs it as it runs the SDK's and MCP's: one
 * change set through the store's writer, compare-and-set on the version the model was shown.
 */
export function registerToolRoutes(app: FastifyInstance, deps: ToolRouteDeps) {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { kinds, embedder } = deps.tools;
  const backend = new LocalToolBackend({ memories: deps.store.memories, embedder, recall: deps.recall, kinds });

  api.post(
    '/v1/tools/apply',
    {
      schema: {
        summary: "Write one memory tool operation (manage_memory's create, update or delete)",
        tags,
        body: toolApplyInputSchema,
        response: {
          200: toolApplyResponse.describe(
            '`applied` with the memory as written, or `conflict` (nothing written) with the memory as it is now',
          ),
          ...refusals(400, 413, 503),
          403: refusal("the operation's target is outside the context's namespaces"),
        },
      },
    },
    async (request) => {
      const { op, actor } = request.body;
      // Under an API key the context carries the key's tenant, which every namespace template
      // starts with (403 for another's); a target outside the context's namespaces is the
      // backend's 403. The actor is the tool's, as in-process: the tenant is in the namespace.
      const context = deps.tenancy.stampContext(request, request.body.context);
      return backend.apply({ context, op: checkToolOp(op, kinds, context), actor });
    },
  );

  // The same for every tenant: a key is needed (401), no tenant's data is read (no 403).
  api.get(
    '/v1/kinds',
    {
      ...untenanted,
      schema: {
        summary: "The service's memory kinds: names, namespace templates, modes and document schemas",
        tags,
        response: { 200: kindsResponse.describe('the kinds, as configured (ENGRAM_KINDS_FILE or the defaults)') },
      },
    },
    async () => ({
      kinds: kinds.map((k) => ({
        name: k.name,
        description: k.description,
        namespace: k.namespace,
        mode: k.mode,
        ...(k.debounceMs !== undefined && { debounceMs: k.debounceMs }),
        document: jsonSchema(k),
      })),
    }),
  );
}
