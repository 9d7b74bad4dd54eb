// A bare tRPC WebSocket client for tests that need what the client-sdk hides: one socket kept
// open across calls, frames of our choosing, and every reply as it comes.
import WebSocket from 'ws';

export interface Reply {
  id: number | string | null;
  result?: { type: string; data?: unknown };
  error?: { message: string; data?: { code?: string } };
}

export interface RawSocket {
  socket: WebSocket;
  /** Sends one message, or several in one frame. */
  send(message: object | object[]): void;
  subscribe(id: number, input?: object): void;
  stop(id: number): void;
  /** The next reply for this id that satisfies `accept` (already received ones count). */
  reply(id: number, accept?: (reply: Reply) => boolean, timeoutMs?: number): Promise<Reply>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

export async function openRawSocket(url: string, params: { apiKey?: string; token?: string }): Promise<RawSocket> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/trpc?connectionParams=1`);
  const replies: Reply[] = [];
  const waiters = new Set<() => void>();
  socket.on('message', (raw) => {
    const text = raw.toString();
    if (text === 'PING') return socket.send('PONG');
    const parsed = JSON.parse(text) as Reply | Reply[];
    replies.push(...(Array.isArray(parsed) ? parsed : [parsed]));
    for (const wake of waiters) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.send(JSON.stringify({ method: 'connectionParams', data: params }));
  const send = (message: object | object[]) => socket.send(JSON.stringify(message));
  return {
    socket,
    send,
    subscribe: (id, input = {}) => send({ id, method: 'subscription', params: { path: 'onUpdate', input } }),
    stop: (id) => send({ id, method: 'subscription.stop' }),
    async reply(id, accept = () => true, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const index = replies.findIndex((reply) => reply.id === id && accept(reply));
        if (index >= 0) return replies.splice(index, 1)[0]!;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching reply for ${id} within ${timeoutMs} ms; got ${JSON.stringify(replies)}`);
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiters.delete(wake);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(wake, left);
          waiters.add(wake);
        });
      }
    },
    closed,
    close: () => socket.close(),
  };
}

export const isError = (code: string) => (reply: Reply) => reply.error?.data?.code === code;
export const isStarted = (reply: Reply) => reply.result?.type === 'started';
