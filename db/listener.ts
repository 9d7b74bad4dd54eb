// A dedicated connection that LISTENs on a channel and reconnects when it drops. After each
// (re)connect it calls `onNotify` once, since notifications sent while it was away are lost.
import pg from 'pg';

export interface ListenerOptions {
  connectionString: string;
  channel: string;
  onNotify(payload: string): void;
  onError(error: Error): void;
  /** Waits between reconnect attempts, growing to `maxDelayMs`. */
  minDelayMs?: number;
  maxDelayMs?: number;
}

export interface Listener {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createListener(options: ListenerOptions): Listener {
  let client: pg.Client | undefined;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let delay = options.minDelayMs ?? 250;

  async function connect(): Promise<void> {
    const next = new pg.Client({ connectionString: options.connectionString, application_name: 'kiln-events' });
    next.on('notification', (message) => {
      if (message.channel === options.channel) options.onNotify(message.payload ?? '');
    });
    next.on('error', (error) => {
      options.onError(error);
      scheduleReconnect(next);
    });
    next.on('end', () => scheduleReconnect(next));
    await next.connect();
    await next.query(`LISTEN ${next.escapeIdentifier(options.channel)}`);
    client = next;
    delay = options.minDelayMs ?? 250;
    options.onNotify(''); // catch up on whatever happened while not listening
  }

  function scheduleReconnect(failed: pg.Client): void {
    if (stopped || client !== failed || retryTimer) return;
    client = undefined;
    failed.end().catch(() => {});
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connect().catch((error: unknown) => {
        options.onError(error instanceof Error ? error : new Error(String(error)));
        delay = Math.min(options.maxDelayMs ?? 10_000, delay * 2);
        client = failed; // so the next schedule is not refused as stale
        scheduleReconnect(failed);
      });
    }, delay);
  }

  return {
    start: connect,
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      await client?.end().catch(() => {});
      client = undefined;
    },
  };
}
