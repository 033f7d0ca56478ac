import { z } from 'zod';

/**
 * A boolean in a query string (`refreshTtl=true|false`). Query strings carry text, so exactly
 * these two spellings: zod's `stringbool` alone would also take `1`, `yes`, `on`, `TRUE`...,
 * and a typo such as `ture` should be a 400, not a silent default.
 */
export const queryBool = z.stringbool({ truthy: ['true'], falsy: ['false'], case: 'sensitive' });
