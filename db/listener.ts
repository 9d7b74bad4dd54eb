// A dedicated connection that LISTENs on a channel and reconnects when it drops (the server
// restarted, the network broke), for as long as it takes. After each (re)connect it calls
// `onNotify` once, since notifications sent while it was away are lost.
import pg from 'pg';

export interface ListenerOptions {
  connectionString: string;
  channel: string;
  onNotify(payload: string): void;
  /** The connection failed; called once until it is back, however many attempts that takes. */
  onError(error: Error): void;
  /** Waits between reconnect attempts, doubling from `minMs` to `maxMs`. */
  reconnectMs: { minMs: number; maxMs: number };
}

export interface Listener {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createListener(options: ListenerOptions): Listener {
  let client: pg.Client | undefined;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | undefined;
  // The longest wait is short: while this connection is away, live events wait for it.
  const { minMs: minDelayMs, maxMs: maxDelayMs } = options.reconnectMs;
  let delay = minDelayMs;
  let failing = false; // reported once per outage, not once per reconnect attempt
  const reportOnce = (error: Error) => {
    if (!failing) options.onError(error);
    failing = true;
  };

  async function connect(): Promise<void> {
    // keepAlive: a connection whose server vanished without a word is noticed, not listened on forever.
    const next = new pg.Client({ connectionString: options.connectionString, application_name: 'kiln-events', keepAlive: true });
    next.on('notification', (message) => {
      if (message.channel === options.channel) options.onNotify(message.payload ?? '');
    });
    next.on('error', (error) => {
      reportOnce(error);
      scheduleReconnect(next);
    });
    next.on('end', () => scheduleReconnect(next));
    try {
      await next.connect();
      await next.query(`LISTEN ${next.escapeIdentifier(options.channel)}`);
    } catch (error) {
      await next.end().catch(() => {}); // connected but LISTEN failed: do not leave it open
      throw error;
    }
    if (stopped) return void (await next.end().catch(() => {}));
    client = next;
    delay = minDelayMs;
    failing = false;
    options.onNotify(''); // catch up on whatever happened while not listening
  }

  function scheduleReconnect(failed: pg.Client): void {
    if (stopped || client !== failed || retryTimer) return;
    client = undefined;
    failed.end().catch(() => {});
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connect().catch((error: unknown) => {
        reportOnce(error instanceof Error ? error : new Error(String(error)));
        delay = Math.min(maxDelayMs, delay * 2);
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
