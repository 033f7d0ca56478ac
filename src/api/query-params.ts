import { z } from 'zod';

/** Query-string fields shared by the routes: query strings carry text, and repeat keys for lists. */

/** `?namespace=a&namespace=b`: one `namespace` per label (one label arrives as a string). */
export const queryNamespace = z
  .union([z.string(), z.array(z.string())], {
    // A union alone says "invalid input": say how to give it.
    error: (issue) =>
      issue.input === undefined
        ? 'is required: give it as one `namespace` parameter per label, such as ?namespace=memories&namespace=u1'
        : undefined,
  })
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .describe('the namespace, one label per repeat: `?namespace=a&namespace=b`');

/**
 * A boolean (`refreshTtl=true|false`): exactly these two spellings. zod's `stringbool` alone
 * would also take `1`, `yes`, `on`, `TRUE`..., and a typo such as `ture` should be a 400, not
 * a silent default.
 */
export const queryBool = z
  .stringbool({ truthy: ['true'], falsy: ['false'], case: 'sensitive' })
  .meta({ enum: ['true', 'false'] });

/**
 * A whole number in digits (`limit=20`). Anything else (`1e308`, `0x10`, ` 5`, `lots`) becomes
 * NaN rather than a type error, so that the field's own range check refuses it naming its bounds.
 */
export const queryInt = z
  .string()
  .transform((s) => (/^-?\d{1,16}$/.test(s) ? Number(s) : NaN))
  .meta({ pattern: '^-?\\d{1,16}$', description: 'a whole number, in digits' });
