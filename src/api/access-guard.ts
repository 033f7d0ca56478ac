import { BlockList, isIP } from 'node:net';
import { PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** Whether `host` is reachable from this machine only. A name other than `localhost` is not known to be. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const address = host.replace(/^\[(.*)\]$/, '$1');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return loopback.check(mapped, 'ipv4');
  const family = isIP(address);
  return family !== 0 && loopback.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export interface AccessSettings {
  host: string;
  port: number;
  keyed: boolean;
  allowOpen: boolean;
}

/**
 * Without API_KEYS, whoever reaches the API reads, searches and deletes every tenant's memories
 * and runs the queues in Bull Board. That is a first run's convenience on loopback; on any other
 * address it must be said out loud (ALLOW_OPEN_ACCESS, for a proxy in front that authenticates),
 * never the silent default.
 */
export function checkOpenAccess(settings: AccessSettings, log: Logger): void {
  if (settings.keyed || isLoopback(settings.host)) return;
  if (!settings.allowOpen) {
    throw new PermanentError(
      `HOST is ${settings.host}, not a loopback address, and API_KEYS is unset: anyone who reaches port ${settings.port} could read and delete every tenant's memories and run the job queues. Set API_KEYS and ADMIN_PASSWORD, listen on 127.0.0.1, or set ALLOW_OPEN_ACCESS=true when something in front of engram authenticates`,
    );
  }
  log.warn(
    { host: settings.host, port: settings.port },
    'ALLOW_OPEN_ACCESS: the API listens beyond loopback without API_KEYS; every request is trusted',
  );
}
