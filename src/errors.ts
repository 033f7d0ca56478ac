/**
 * Three kinds of failure, each with one meaning (house style: few error classes).
 * Always keep the `cause`: an operator reading a failed job needs the original error.
 */

/** The caller sent something wrong and must fix it (HTTP 4xx). Nothing was written. */
export class InputError extends Error {
  override name = 'InputError';
  constructor(
    message: string,
    readonly details: unknown = undefined,
    readonly status = 400,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Worth retrying as it is: a dependency was down, a model returned 5xx, a version conflict. */
export class RetryableError extends Error {
  override name = 'RetryableError';
}

/** Never worth retrying: retrying would fail the same way (bad config, invalid stored data). */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** Turns anything thrown into an Error, so logs and job failures always have a message. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown));
}
