import { readPrompt, type ChatHandler, type ChatReply, type ChatRequest } from '../../test/fake-model/server.js';

/**
 * The local stand-in model of `npm run example:chat`: deterministic, no account needed. A request
 * with tools is one of engram's reflections; it remembers what the user says they are interested
 * in, into, love or like ("I am interested in cloud services, AWS and Azure" makes three
 * memories). A request without tools is the chat example's completion; its answer quotes the
 * memories of the developer message, so a user sees them being used. Only the example's
 * launcher imports it; engram itself never does.
 */
export const standInModel: ChatHandler = (request) => {
  const tools = (request.tools ?? []).map((t) => t.function.name);
  if (tools.includes('manage_memory')) return agent(request);
  return tools.length ? remember(request) : answer(request);
};

const INTEREST = /\b(?:i am|i'm|im)\s+(?:(?:really|also|now)\s+)*(?:interested in|into)\s+([^.!?\n]+)/gi;
const LIKING = /\bi\s+(?:(?:really|also)\s+)*(?:love|like|enjoy)\s+([^.!?\n]+)/gi;

function remember(request: ChatRequest): ChatReply {
  const { existing, turns, tools } = readPrompt(request);
  if (!tools.includes('insert_memory')) return { content: 'no changes' };
  const known = new Set(existing.map((m) => String(m.document.content).toLowerCase()));
  const fresh = facts(turns.filter((t) => t.role === 'user').map((t) => t.content)).filter(
    (f) => !known.has(f.toLowerCase()),
  );
  if (!fresh.length) return { content: 'no changes' };
  return { toolCalls: fresh.map((content) => ({ name: 'insert_memory', arguments: { content } })) };
}

/** The memories texts say: "User is interested in AWS", "User likes ramen". */
function facts(texts: string[]): string[] {
  const found: string[] = [];
  for (const text of texts)
    for (const [pattern, phrase] of [
      [INTEREST, 'is interested in'],
      [LIKING, 'likes'],
    ] as const)
      for (const match of text.matchAll(pattern))
        for (const thing of items(match[1] as string)) found.push(`User ${phrase} ${thing}`);
  return [...new Set(found)];
}

/**
 * The tool-using chat, as a careful agent: it searches first (search_memory with the user's
 * words); what the user states about themselves and the search did not find, it stores
 * (manage_memory create, one call per fact); then it answers from what the tools returned.
 */
function agent(request: ChatRequest): ChatReply {
  const question = request.messages.findLast((m) => m.role === 'user')?.content ?? '';
  const stated = facts([question]);
  if (request.messages.at(-1)?.role !== 'tool')
    return { toolCalls: [{ name: 'search_memory', arguments: { query: question, limit: 10 } }] };
  const results = request.messages
    .filter((m) => m.role === 'tool')
    .map((m) => JSON.parse(m.content ?? '{}') as { memories?: { document: { content: string } }[]; result?: string });
  const found = results.flatMap((r) => r.memories ?? []).map((m) => m.document.content);
  const stored = results.filter((r) => r.result === 'created').length;
  const known = new Set(found.map((f) => f.toLowerCase()));
  const fresh = stated.filter((f) => !known.has(f.toLowerCase()));
  if (fresh.length && !stored)
    return {
      toolCalls: fresh.map((content) => ({
        name: 'manage_memory',
        arguments: { action: 'create', document: { content } },
      })),
    };
  const said = stored
    ? `I will remember that (${stored} new ${stored === 1 ? 'memory' : 'memories'}).`
    : stated.length
      ? 'I knew that already.'
      : found.length
        ? `What I remember about you: ${found.join('; ')}.`
        : 'I do not remember anything about you yet.';
  return { content: `[stand-in model] ${said} A real model (set OPENAI_API_KEY) would now answer: ${question}` };
}

/** "cloud services, AWS and Azure" -> ["cloud services", "AWS", "Azure"]. */
function items(list: string): string[] {
  return list
    .split(/,|\band\b|&/)
    .map((s) => s.replace(/^\s*(?:also|the)\s+/i, '').trim())
    .filter((s) => s.length > 0 && s.length <= 100);
}

function answer(request: ChatRequest): ChatReply {
  const instructions = request.messages.find((m) => m.role === 'developer' || m.role === 'system')?.content ?? '';
  const question = request.messages.findLast((m) => m.role === 'user')?.content ?? '';
  const memories = [...instructions.matchAll(/<memory [^>]*>(.*?)<\/memory>/g)].map((m) =>
    (m[1] as string).replaceAll('&lt;', '<').replaceAll('&amp;', '&'),
  );
  const recalled = memories.length
    ? `What I remember about you: ${memories.join('; ')}.`
    : 'I do not remember anything about you yet.';
  return { content: `[stand-in model] ${recalled} A real model (set OPENAI_API_KEY) would now answer: ${question}` };
}
