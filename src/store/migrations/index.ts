import type { Tables } from '../sql.js';
import * as m001 from './001-init.js';
import * as m002 from './002-store-api.js';
import * as m003 from './003-ttl-refresh.js';
import * as m004 from './004-consolidation-cursor.js';
import * as m005 from './005-applied-changes.js';
import * as m006 from './006-text-search.js';
import * as m007 from './007-validity-and-erase.js';
import * as m008 from './008-history-by-actor.js';
import * as m009 from './009-vector-storage.js';
import * as m010 from './010-inline-vectors.js';
import * as m011 from './011-bounded-times.js';
import * as m012 from './012-history-validity.js';

/** What a deployment chose when its schema was made; both are fixed for the schema's life. */
export interface MigrationOptions {
  dimensions: number;
  /** A Postgres text-search configuration name (`english`, `simple`...): already checked as an identifier. */
  textSearchConfig: string;
  /** `float`: pgvector's `vector`; `half`: `halfvec`, half the bytes. */
  vectorStorage: 'float' | 'half';
}

export interface Migration {
  id: number;
  name: string;
  sql: (t: Tables, o: MigrationOptions) => string;
}

/** Numbered, append-only. Never edit one that has shipped; add the next number. */
export const migrations: Migration[] = [
  { id: 1, ...m001 },
  { id: 2, ...m002 },
  { id: 3, ...m003 },
  { id: 4, ...m004 },
  { id: 5, ...m005 },
  { id: 6, ...m006 },
  { id: 7, ...m007 },
  { id: 8, ...m008 },
  { id: 9, ...m009 },
  { id: 10, ...m010 },
  { id: 11, ...m011 },
  { id: 12, ...m012 },
];
