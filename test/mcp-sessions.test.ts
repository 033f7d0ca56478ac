import { describe, expect, it } from 'vitest';
import { McpSessions } from '../src/api/mcp-sessions.js';

/** The session table's bounds, on its own (the HTTP test opens a tenant's sessions past them). */
describe('MCP sessions', () => {
  const table = (limits = { perTenant: 3, total: 5, idleMs: 1_000 }) => {
    const closed: string[] = [];
    return { sessions: new McpSessions<string>(limits, (value) => closed.push(value)), closed };
  };

  it("closes a tenant's own least recently used session past its cap, never another's", () => {
    const { sessions, closed } = table();
    sessions.add('b1', 'globex', 'b1', 0);
    for (let i = 1; i <= 10; i++) sessions.add(`a${i}`, 'acme', `a${i}`, i);
    expect(closed).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7']);
    expect(sessions.use('b1', 'globex', 11)).toBe('b1');
    expect(sessions.ids().sort()).toEqual(['a10', 'a8', 'a9', 'b1']);
  });

  it('a use makes a session recent, and answers only its tenant', () => {
    const { sessions, closed } = table();
    for (let i = 1; i <= 3; i++) sessions.add(`a${i}`, 'acme', `a${i}`, i);
    expect(sessions.use('a1', 'globex', 4)).toBeNull();
    expect(sessions.use('a1', 'acme', 4)).toBe('a1');
    sessions.add('a4', 'acme', 'a4', 5);
    expect(closed).toEqual(['a2']);
  });

  it('past the total, the tenant holding the most pays, not one holding less', () => {
    const { sessions, closed } = table();
    sessions.add('b1', 'globex', 'b1', 0);
    sessions.add('c1', 'initech', 'c1', 1);
    for (let i = 1; i <= 3; i++) sessions.add(`a${i}`, 'acme', `a${i}`, 1 + i);
    // Full (5): a new tenant's session closes acme's oldest, acme holding 3.
    sessions.add('d1', 'umbrella', 'd1', 10);
    expect(closed).toEqual(['a1']);
    expect(sessions.size).toBe(5);
    expect(sessions.use('b1', 'globex', 11)).toBe('b1');
    expect(sessions.use('c1', 'initech', 11)).toBe('c1');
  });

  it('past the total, a tenant tied for the most closes its own session, not the other tied one', () => {
    const { sessions, closed } = table();
    sessions.add('b1', 'globex', 'b1', 0);
    sessions.add('b2', 'globex', 'b2', 1);
    sessions.add('a1', 'acme', 'a1', 2);
    sessions.add('a2', 'acme', 'a2', 3);
    sessions.add('c1', 'initech', 'c1', 4);
    // Full (5), acme and globex both holding 2: acme's third session costs acme, not globex.
    sessions.add('a3', 'acme', 'a3', 10);
    expect(closed).toEqual(['a1']);
    expect(sessions.use('b1', 'globex', 11)).toBe('b1');
    expect(sessions.use('b2', 'globex', 11)).toBe('b2');
  });

  it('closes sessions idle past idleMs when the next one opens; a deleted one is not closed', () => {
    const { sessions, closed } = table();
    sessions.add('a1', 'acme', 'a1', 0);
    sessions.add('b1', 'globex', 'b1', 500);
    expect(sessions.delete('b1')).toBe('b1');
    sessions.add('c1', null, 'c1', 1_001);
    expect(closed).toEqual(['a1']);
    expect(sessions.ids()).toEqual(['c1']);
  });
});
