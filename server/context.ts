// What every procedure of the router sees. The router's type carries this context, so the
// client-sdk's declarations reach this file: it names the services by their contracts
// (services.ts) and imports nothing of their implementations.
import type { TRPCError } from '@trpc/server';
import type { CallOrigin, Caller, KilnServices, SubscriberConnection } from './services.ts';

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

/** The HTTP request (or WebSocket upgrade) a call arrived on, as far as logs and traces need it. */
export interface IncomingRequest {
  /** Its id: the client's x-request-id if sane, else Kiln's (answered in the same header). */
  readonly id: string;
  /** The client's W3C traceparent header, if it sent one: the call's span continues that trace. */
  readonly traceparent: string | undefined;
  /** tRPC calls on it that logged a line of their own (its HTTP line is then left out). */
  calls: number;
}

/** What a call's context carries once observed: its origin (stored with what it queues) and its tenant once known. */
export interface CallRecord extends CallOrigin {
  tenantId: string | undefined;
}

/** One tRPC call being observed (its log line and span: call-telemetry.ts); `end` reports it. */
export interface ObservedCall {
  readonly record: CallRecord;
  end(result: { ok: true; output: unknown } | { ok: false; error: TRPCError }, rawInput: () => Promise<unknown>): Promise<void>;
}

/** Starts observing a call; declared here so the router's types reach no implementation of it. */
export type CallObserver = (call: { path: string; type: string; request: IncomingRequest; overWebSocket: boolean }) => ObservedCall;

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
  request: IncomingRequest;
  /** The WebSocket, for calls that arrive over one: limits its subscriptions, cuts off a slow consumer. */
  connection?: SocketConnection;
}
