// One WebSocket's own limits, as HTTP has its calls per request: how many subscriptions it may
// hold, and how long it may stay open holding none (an idle or half-open client is let go; the
// client-sdk opens its socket again when it next subscribes).
import type { WebSocket } from 'ws';
import type { SocketConnection } from './context.ts';
import { tooManyRequests } from './errors.ts';

export interface SocketLimits {
  maxSubscriptions: number;
  idleMs: number;
}

/** Close code for a connection closed as idle: a normal closure, nothing to resume. */
export const IDLE_CLOSE_CODE = 1000;

export function trackSocketConnection(socket: WebSocket, limits: SocketLimits): SocketConnection {
  let open = 0;
  let idle: NodeJS.Timeout | undefined;
  const idleFromNow = () => {
    clearTimeout(idle);
    if (open > 0) return;
    idle = setTimeout(() => socket.close(IDLE_CLOSE_CODE, `idle: no subscription for ${limits.idleMs / 1000} s`), limits.idleMs);
    idle.unref();
  };
  socket.on('message', idleFromNow);
  socket.once('close', () => clearTimeout(idle));
  idleFromNow();

  return {
    bufferedBytes: () => socket.bufferedAmount,
    close: (code, reason) => socket.close(code, reason),
    admitSubscription() {
      if (open >= limits.maxSubscriptions) {
        throw tooManyRequests(`this connection holds ${limits.maxSubscriptions} subscriptions, the most one WebSocket may: stop one before starting another`);
      }
      open += 1;
      clearTimeout(idle);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        open -= 1;
        idleFromNow();
      };
    },
  };
}
