/**
 * JSON merge patch (RFC 7396), how profiles are patched: fields in the patch replace fields in
 * the document, `null` removes one, nested objects merge, arrays are replaced whole. The model
 * sends only what changed, so a profile update costs the tokens of the change, not the profile.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    // Own properties only, defined rather than assigned: the patch is a model's JSON, and a key
    // `__proto__` assigned would set the prototype, `constructor` read would merge into Object.
    else
      Object.defineProperty(out, key, {
        value: mergePatch(Object.hasOwn(out, key) ? out[key] : undefined, value),
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
