import { readPrompt, type ChatHandler, type ChatReply } from './server.js';

/**
 * A stand-in memory manager for the seeds' ramen/pasta conversation: it reads the prompt engram
 * sends (existing memories under aliases, new turns) and answers with the tool calls a good
 * model would make. Used by the end-to-end test and the demo.
 */
export const foodieModel: ChatHandler = (request): ChatReply => {
  const { existing, turns } = readPrompt(request);
  const said = turns
    .map((t) => t.content)
    .join(' ')
    .toLowerCase();
  const find = (word: string) => existing.find((m) => String(m.document.content).toLowerCase().includes(word));
  if (said.includes('miso ramen')) {
    const ramen = find('ramen');
    const pasta = find('pasta');
    const calls: { name: string; arguments: unknown }[] = [];
    if (ramen)
      calls.push({
        name: 'update_memory',
        arguments: { id: ramen.id, document: { content: 'User loves ramen, especially miso ramen' } },
      });
    else calls.push({ name: 'insert_memory', arguments: { content: 'User loves miso ramen' } });
    if (pasta) calls.push({ name: 'delete_memory', arguments: { id: pasta.id } });
    return { toolCalls: calls };
  }
  if (said.includes('ramen')) {
    // What is stored already (by an agent's memory tool, say) is not stored again.
    const calls = [
      ...(find('ramen') ? [] : [{ name: 'insert_memory', arguments: { content: 'User loves ramen' } }]),
      ...(find('pasta') ? [] : [{ name: 'insert_memory', arguments: { content: 'User likes pasta' } }]),
    ];
    return calls.length ? { toolCalls: calls } : { content: 'no changes' };
  }
  return { content: 'no changes' };
};
