import { connect, type Socket } from 'node:net';

/** One command a Redis server executed, as MONITOR reports it. */
export interface Watched {
  /** `ip:port` of the client that sent it, or `lua` for a command run by a script. */
  source: string;
  /** The command's name, lower-cased. */
  command: string;
}

export interface Watcher {
  /** Every command seen since the last `clear()`. */
  readonly seen: Watched[];
  clear(): void;
  close(): void;
}

/**
 * Watches a Redis server's commands with MONITOR over a plain socket.
 *
 * Why not ioredis' `monitor()`: it flips into monitoring mode a microtask after MONITOR's `+OK`,
 * so on a busy server a monitor line arriving in the same TCP read as the `+OK` is taken for a
 * reply to no command, and ioredis throws "Command queue state error" (CI saw it on the cluster,
 * where other test files share the masters). MONITOR's lines are plain `+` status lines, so
 * reading them directly is simpler than working around the race.
 */
export function watchCommands(host: string, port: number): Promise<Watcher> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host, port });
    const seen: Watched[] = [];
    let buffered = '';
    let ready = false;
    socket.setEncoding('utf8');
    socket.once('error', reject);
    socket.on('connect', () => socket.write('MONITOR\r\n'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let end: number;
      while ((end = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (!ready) {
          if (line !== '+OK') return reject(new Error(`MONITOR refused: ${line}`));
          ready = true;
          resolve({ seen, clear: () => void (seen.length = 0), close: () => socket.destroy() });
          continue;
        }
        // +<unix time> [<db> <source>] "<command>" "<arg>"...
        const match = /^\+\S+ \[\d+ ([^\]]+)\] "([^"]*)"/.exec(line);
        if (match) seen.push({ source: match[1] as string, command: (match[2] as string).toLowerCase() });
      }
    });
  });
}
