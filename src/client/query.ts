/**
 * A query string as the API reads it: one `namespace` per label, then the other fields, each
 * as text (numbers in digits, booleans as `true`/`false`); undefined fields are left out.
 */
export function namespaceQuery(
  namespace: readonly string[],
  fields: Record<string, string | number | boolean | undefined>,
): URLSearchParams {
  const query = new URLSearchParams();
  for (const label of namespace) query.append('namespace', label);
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    query.append(name, String(value));
  }
  return query;
}
