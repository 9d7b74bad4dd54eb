// What every procedure of the router sees. The router's type carries this context, so the
// client-sdk's declarations reach this file: it names the services by their contracts
// (services.ts) and imports nothing of their implementations.
import type { Caller, KilnServices } from './services.ts';

/** A verified caller, good until `validUntil` (ms since the epoch): then it must be verified again. */
export interface Authenticated {
  ok: true;
  caller: Caller;
  validUntil: number;
}

export type AuthResult = Authenticated | { ok: false; reason: string };

export interface Context {
  /** Resolves the caller from the request's credential: on every call (a process-wide cache keeps it cheap). */
  authenticate(): Promise<AuthResult>;
  /** Whether any credential was presented, to tell "missing" from "wrong". */
  hasCredentials: boolean;
  services: KilnServices;
  /** The WebSocket, for calls that arrive over one: lets a subscription cut off a slow consumer. */
  connection?: { readonly bufferedAmount: number; close(code: number, reason: string): void };
}
