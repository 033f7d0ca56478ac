import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/**
 * Why a request's work stopped when its client closed the connection before the answer. Named
 * AbortError, as an aborted fetch is: the metrics count it `aborted`, not among the errors.
 */
export const CLIENT_GONE = Object.assign(new Error('the client closed the connection before the answer'), {
  name: 'AbortError',
});

/**
 * A signal that aborts when the response's connection closes before the answer was written, or
 * once a deadline passes (with the deadline's error). Fastify 5: `reply.raw`'s close with
 * `writableFinished` false is a client gone; the request's own close fires once its body is
 * read, so it cannot tell.
 */
export function abandonable(
  res: ServerResponse,
  deadline?: { ms: number; error: () => Error },
): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) controller.abort(CLIENT_GONE);
  };
  res.once('close', onClose);
  const timer = deadline ? setTimeout(() => controller.abort(deadline.error()), deadline.ms) : undefined;
  timer?.unref();
  return {
    signal: controller.signal,
    done: () => {
      clearTimeout(timer);
      res.off('close', onClose);
    },
  };
}

/**
 * Runs a read with a signal that aborts when its client goes away, so that its statements stop
 * on Postgres instead of running to their timeout for nobody (a client that gives up and
 * retries would otherwise stack its abandoned reads on the pool). It then rejects with
 * CLIENT_GONE, which the error handler answers 499 (nginx's "client closed request": only the
 * logs and metrics see it).
 */
export async function untilGone<T>(reply: FastifyReply, read: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const run = abandonable(reply.raw);
  try {
    return await read(run.signal);
  } finally {
    run.done();
  }
}
