import type { Tables } from '../sql.js';
import * as m001 from './001-init.js';

export interface Migration {
  id: number;
  name: string;
  sql: (t: Tables, dims: number) => string;
}

/** Numbered, append-only. Never edit one that has shipped; add the next number. */
export const migrations: Migration[] = [{ id: 1, ...m001 }];
