import { describe, expect, it } from 'vitest';
import { mergePatch } from '../src/memory/merge-patch.js';

describe('mergePatch', () => {
  it("keeps keys named like Object's own as data: never the prototype, never a merge into Object", () => {
    // A model's patch is JSON.parse's output: `__proto__` there is an own key.
    const patch = JSON.parse('{"__proto__":{"polluted":1},"constructor":{"a":1}}') as unknown;
    const out = mergePatch({ name: 'x' }, patch) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['name', '__proto__', 'constructor']);
    expect(JSON.stringify(out)).toBe('{"name":"x","__proto__":{"polluted":1},"constructor":{"a":1}}');
  });
});
