// What every procedure of the router sees. The router's type carries this context, so the
// client-sdk's declarations reach this file: it names the services by their contracts
// (services.ts) and imports nothing of their implementations.
import type { Caller, KilnServices, SubscriberConnection } from './services.ts';

/** A verified caller, good until `validUntil` (ms since the epoch): then it must be verified again. */
export interface Authenticated {
  ok: true;
  caller: Caller;
  validUntil: number;
}

export type AuthResult = Authenticated | { ok: false; reason: string };

/** The WebSocket a call arrived on, as far as procedures need it. */
export interface SocketConnection extends SubscriberConnection {
  /**
   * Takes one of the connection's subscription slots, answering its release (safe to call more
   * than once); throws TOO_MANY_REQUESTS when the connection holds its limit already.
   */
  admitSubscription(): () => void;
}

export interface Context {
  /** Resolves the caller from the request's credential: on every call (a process-wide cache keeps it cheap). */
  authenticate(): Promise<AuthResult>;
  /** Whether any credential was presented, to tell "missing" from "wrong". */
  hasCredentials: boolean;
  /** Whether the credential is the operator's admin token (KILN_ADMIN_TOKEN). */
  isOperator: boolean;
  /** Whether this server has an admin token at all (admin procedures are off without one). */
  adminEnabled: boolean;
  services: KilnServices;
  /** The WebSocket, for calls that arrive over one: limits its subscriptions, cuts off a slow consumer. */
  connection?: SocketConnection;
}
