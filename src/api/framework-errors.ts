import { STATUS_CODES } from 'node:http';

/**
 * Words for a 4xx that Fastify or a plugin raised with only its status's name as the message
 * ("Bad Request", "Unsupported Media Type"): the one error shape, `{ error }`, is meant to say
 * what is wrong. The static-file plugin behind /docs and Bull Board's assets (`send`) refuses a
 * path holding NUL or an undecodable escape with a bare 400, a path leaving its folder with a
 * bare 403, a range past the file with a bare 416. `url` is absent where the caller has no
 * request (Bull Board's error handler). A message that already says something is kept.
 */
export function frameworkErrorMessage(error: { message: string; code?: string }, status: number, url?: string): string {
  const at = url === undefined ? '' : ` (${url.slice(0, 200)})`;
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return 'the body must be JSON (content-type: application/json)';
  if (error.message !== STATUS_CODES[status]) return error.message;
  switch (status) {
    case 400:
      return `the path names no file${at}: it holds a NUL byte or an escape that does not decode`;
    case 403:
      return `the path leaves the folder of files served here${at}`;
    case 412:
      return `the file changed since the version your If-Match or If-Unmodified-Since names${at}`;
    case 416:
      return `the Range header asks for bytes past the end of the file${at}`;
    default:
      return `${status} ${error.message}${at}`;
  }
}
