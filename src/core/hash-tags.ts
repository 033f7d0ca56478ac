import calculateSlot from 'cluster-key-slot';

/** Redis Cluster's slots. */
export const SLOTS = 16_384;
/** Salts tried per tag before the first one is kept (never reached: about 2K suffice). */
const MAX_SALT = 100_000;

/** The slot of a key, as Redis Cluster computes it. */
export const slotOf = (key: string): number => calculateSlot(key);

/**
 * `count` hash tags of `base`, `{<base>:<n>.<salt>}`, the salt the first that puts the tag's slot
 * in the middle half of the n-th of `count` equal slot ranges: tags at evenly spaced slots land
 * count/M on each of M masters that split the slots evenly (as `redis-cli --cluster create`
 * does). Without a salt, CRC16 placed 3 of 6 tags on one master of three. Pure and
 * deterministic: every process computes the same tags.
 */
export function spreadTags(base: string, count: number): string[] {
  const width = SLOTS / count;
  return Array.from({ length: count }, (_, n) => {
    const low = Math.ceil(n * width + width / 4);
    const high = Math.floor((n + 1) * width - width / 4);
    for (let salt = 0; salt < MAX_SALT; salt++) {
      const tag = `{${base}:${n}.${salt}}`;
      const slot = calculateSlot(tag);
      if (slot >= low && slot <= high) return tag;
    }
    return `{${base}:${n}.0}`;
  });
}
