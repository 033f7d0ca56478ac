import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { reflectThread } from '../src/memory/reflect.js';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { memoryValues } from './helpers/store-state.js';

const kind = (name: string) =>
  defineKind({ name, description: name, namespace: [name, '{userId}'], schema: z.object({ content: z.string() }) });

/**
 * A producer says which kinds its turns feed (`kinds` on an enqueue). Turns of one thread sent
 * for different kinds may wait in one buffer; the model cannot be told which turn may feed which
 * kind, so each reflection takes the turns that feed the same kinds, and goes on to the next.
 */
describe('turns feed only the kinds they were sent for', () => {
  let h: Harness;
  const shown: { tools: string[]; turns: string[] }[] = [];
  // Inserts every new user turn into every kind it is offered: what a model is allowed to do.
  const everywhere: ChatHandler = (request) => {
    const { turns, tools } = readPrompt(request);
    shown.push({ tools: tools.filter((t) => t.startsWith('insert_')), turns: turns.map((t) => t.content) });
    return {
      toolCalls: turns.flatMap((t) =>
        tools.filter((name) => name.startsWith('insert_')).map((name) => ({ name, arguments: { content: t.content } })),
      ),
    };
  };
  beforeAll(async () => {
    h = await startHarness({ roles: [], chat: everywhere, runtime: { kinds: [kind('work'), kind('home')] } });
  });
  afterAll(async () => h?.stop());

  it('reflects each run of turns for the same kinds on its own, in one job, in order', async () => {
    const send = (content: string, kinds?: string[]) =>
      h.runtime.producer.enqueue({
        threadId: 'mixed',
        context: { userId: 'u1' },
        messages: [{ role: 'user', content }],
        ...(kinds && { kinds }),
      });
    await send('I lead the billing team', ['work']);
    await send('My cat is called Miso', ['home']);
    await send('I moved to the payments team', ['work']);
    await send('Remember both of these', undefined);

    const outcome = await reflectThread(h.runtime.reflectDeps(), 'mixed', { actor: 'test:mixed' });
    expect(outcome).toMatchObject({ status: 'applied', turns: 4, backlog: false, modelCalls: 4 });
    expect(shown).toEqual([
      { tools: ['insert_work'], turns: ['I lead the billing team'] },
      { tools: ['insert_home'], turns: ['My cat is called Miso'] },
      { tools: ['insert_work'], turns: ['I moved to the payments team'] },
      { tools: ['insert_work', 'insert_home'], turns: ['Remember both of these'] },
    ]);
    const contents = async (ns: string) =>
      (await memoryValues(h.runtime, [ns, 'u1'])).map((m) => m.value.content as string).sort();
    expect(await contents('work')).toEqual([
      'I lead the billing team',
      'I moved to the payments team',
      'Remember both of these',
    ]);
    expect(await contents('home')).toEqual(['My cat is called Miso', 'Remember both of these']);
  });
});
