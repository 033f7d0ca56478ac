import type { Tables } from '../sql.js';
import type { MigrationOptions } from './index.js';

/**
 * The memory store. Namespaces are text[]: whole-segment matching comes from array equality and
 * slices, never LIKE on a joined string (docs/prior-art.md: LangGraph's ("foo") matched ("foobar")).
 */
export const name = 'init';
export const sql = (t: Tables, { dimensions: dims }: MigrationOptions) => `
create extension if not exists vector;

create table ${t.settings} (
  key text primary key,
  value jsonb not null
);
insert into ${t.settings} (key, value) values ('embedding_dimensions', '${dims}'::jsonb);

create table ${t.memories} (
  namespace text[] not null check (cardinality(namespace) between 1 and 16),
  key text not null,
  kind text not null,
  value jsonb not null,
  version bigint not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  expires_at timestamptz,
  primary key (namespace, key)
);
create index on ${t.memories} (expires_at) where expires_at is not null;

-- One row per embedded field of a memory; rows of fields that disappear are deleted on update.
create table ${t.vectors} (
  namespace text[] not null,
  key text not null,
  field text not null,
  embedding vector(${dims}) not null,
  primary key (namespace, key, field),
  foreign key (namespace, key) references ${t.memories} (namespace, key) on delete cascade
);

-- Every change, for audit and undo: who/what (actor, thread), when, before and after.
create table ${t.history} (
  id bigserial primary key,
  namespace text[] not null,
  key text not null,
  kind text not null,
  op text not null check (op in ('insert', 'update', 'delete', 'expire')),
  version bigint not null,
  before jsonb,
  after jsonb,
  actor text not null,
  thread_id text,
  created_at timestamptz not null default now()
);
create index on ${t.history} (namespace, key, id);

-- The per-namespace write lock (row lock) and version used for compare-and-set by reflections.
create table ${t.namespaces} (
  namespace text[] primary key,
  version bigint not null default 0,
  updated_at timestamptz not null default now(),
  consolidated_at timestamptz
);

-- The last buffered turn a committed reflection has applied, per thread (effect-once).
create table ${t.cursors} (
  thread_id text primary key,
  cursor text not null,
  updated_at timestamptz not null default now()
);
`;
