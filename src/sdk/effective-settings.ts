import { z } from 'zod';
import {
  publishedSettingsSchema,
  settingsKey,
  type Publication,
  type PublishedSettings,
} from '../config/published-settings.js';
import { PUBLISHED_KEYS } from '../config/settings.js';
import { InputError } from '../errors.js';
import { layoutProblem } from '../core/redis-layout.js';
import { UnavailableError } from './errors.js';
import type { ClientOptions } from './options.js';

const KEYS = [...PUBLISHED_KEYS, 'kinds'] as const;

/** Whether the client was given every published setting, and so needs no publication. */
export function givenAll(options: ClientOptions): boolean {
  return KEYS.every((key) => options[key] !== undefined);
}

/**
 * The settings the client's producer runs with: each option given to the client, else the one
 * the service published. Without a publication, every one must have been given.
 */
export function effectiveSettings(options: ClientOptions, publication: Publication | null): PublishedSettings {
  const given = Object.fromEntries(KEYS.filter((key) => options[key] !== undefined).map((key) => [key, options[key]]));
  if (!publication) {
    const missing = KEYS.filter((key) => options[key] === undefined);
    if (missing.length)
      throw new UnavailableError(
        'service',
        `no engram service has published its settings at ${settingsKey(options.prefix)} in Redis yet: start a service ` +
          `process (any role) with ENGRAM_PREFIX=${options.prefix} against this Redis, or check the client's ` +
          `\`prefix\`; or give the client ${missing.join(', ')}`,
      );
  }
  const published = publication?.settings.redisShards ?? 1;
  if (publication && options.redisShards !== undefined && options.redisShards !== published)
    throw new InputError(
      `the client's redisShards is ${options.redisShards}, but the service published by ${publication.publishedBy} runs with REDIS_SHARDS=${published}: ` +
        "every producer and worker of a deployment must use the same shards; leave redisShards out to take the service's",
    );
  const shards = options.redisShards ?? published;
  const problem = layoutProblem(options.redisUrl, options.prefix, shards);
  if (problem) throw new InputError(`invalid engram client options: prefix ${problem} (redisShards is ${shards})`);
  const merged = publishedSettingsSchema.safeParse({
    ...publication?.settings,
    ...given,
    ...(shards === 1 ? {} : { redisShards: shards }),
  });
  if (!merged.success)
    throw new InputError(
      `the client's options do not fit the settings published by ${publication?.publishedBy ?? 'the service'}: ${z.prettifyError(merged.error)}`,
      merged.error.issues,
    );
  return merged.data;
}
