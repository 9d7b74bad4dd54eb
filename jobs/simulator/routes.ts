import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimulatorContext } from './context.ts';
import type { RawBody } from './request-body.ts';

// The shape of a /v1 route: which budget it draws on, how large a body it takes, its handler.

/** Creates draw on the create budget (600/min on Replicate), everything else on the other one. */
export type Budget = 'create' | 'read';

export type Method = 'GET' | 'POST' | 'DELETE';

export interface ApiRequest {
  readonly ctx: SimulatorContext;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The route pattern's captures, e.g. [owner, name]. */
  readonly params: readonly string[];
  readonly url: URL;
  /** The request body, read at most once (a hang fault reads it before stalling). */
  readonly body: () => Promise<RawBody>;
}

export type Handler = (request: ApiRequest) => Promise<void> | void;

export interface Endpoint {
  readonly budget: Budget;
  readonly handler: Handler;
  /** Largest body accepted (413 beyond); default: the maxBodyBytes option. */
  readonly maxBodyBytes?: (ctx: SimulatorContext) => number;
}

export interface Route {
  readonly pattern: RegExp;
  readonly methods: Partial<Record<Method, Endpoint>>;
}

/** The route's n-th capture ('' when absent). */
export function param(request: ApiRequest, index: number): string {
  return request.params[index] ?? '';
}
