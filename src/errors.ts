/**
 * The failures engram tells apart, each class with one meaning (house style: few error
 * classes). What a caller or a job does about one follows from its class alone: HTTP statuses
 * are decided in src/api/errors.ts, retries in the workers. Always keep the `cause`: an operator
 * reading a failed job needs the original error.
 */

/** The caller sent something wrong and must fix it. Nothing was written. */
export class InputError extends Error {
  override name = 'InputError';
  constructor(
    message: string,
    /** What is wrong, field by field (zod issues, conflicting items...), for the caller. */
    readonly details: unknown = undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The input is well-formed but over a size bound (a body, a value, the texts to embed). */
export class LimitError extends InputError {
  override name = 'LimitError';
}

/** The caller is not authenticated (`forbidden: false`) or may not touch what it asked for. */
export class AuthError extends Error {
  override name = 'AuthError';
  constructor(
    message: string,
    readonly forbidden: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * The request is valid but conflicts with the current state: a version the caller relied on has
 * moved (compare-and-set), or a thread's pending turns belong to another context. Nothing was
 * written; the caller re-reads and decides again.
 */
export class ConflictError extends Error {
  override name = 'ConflictError';
  constructor(
    message: string,
    readonly details: unknown = undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Worth retrying as it is: a dependency was down, a model returned 5xx, a version conflict. */
export class RetryableError extends Error {
  override name = 'RetryableError';
}

/** A dependency engram needs did not answer (refused, lost, or stalled past its time limit). */
export class UnavailableError extends RetryableError {
  override name = 'UnavailableError';
  constructor(
    /** `service`: no engram service process has published its settings yet (the SDK's start). */
    readonly dependency: 'redis' | 'postgres' | 'chat-model' | 'embedding-model' | 'service',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Never worth retrying: retrying would fail the same way (bad config, invalid stored data). */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/**
 * A model's answer engram cannot use, and asking again would not change: still invalid after
 * the repair rounds (`invalid`), cut at the output limit (`length`), withheld or refused by a
 * content filter (`content-filter`), or a prompt longer than the model takes (`too-long`).
 */
export class ModelOutputError extends PermanentError {
  override name = 'ModelOutputError';
  constructor(
    readonly reason: 'invalid' | 'length' | 'content-filter' | 'too-long',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /**
   * About what the model was shown rather than its setup: other inputs would fare differently.
   * An answer cut at the output limit is the server's setting, true of every input.
   */
  get aboutInput(): boolean {
    return this.reason !== 'length';
  }
}

/** Turns anything thrown into an Error, so logs and job failures always have a message. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown));
}
