/**
 * The chat example on its own, beside a running engram service (`npm start`): the shape of a
 * real application's process. `npm run example:chat` runs engram and this together instead.
 */
import { pino } from 'pino';
import { parseChatConfig } from './config.js';
import { startChat } from './start.js';

const config = parseChatConfig(process.env);
const log = pino({ name: 'chat-example', level: config.LOG_LEVEL });
const chat = await startChat(config, log);
log.info({ url: chat.url }, 'chat example listening: POST /chat {"user_id","prompt"}');

const stop = () =>
  void chat.close().then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, 'error while stopping');
      process.exit(1);
    },
  );
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
