// The page talks to Kiln through the typed client-sdk, as any TypeScript frontend would:
// queries and mutations over HTTP, stages pushed over one WebSocket.
import { TRPCClientError, createKilnClient, type KilnClient, type KilnInputs, type KilnOutputs } from '../../../client-sdk/index.ts';

export type { KilnClient };
export type GenerateItem = KilnInputs['batch']['items'][number];
export type Generation = KilnOutputs['list']['items'][number];
export type Asset = Generation['assets'][number];
export type GenerationEvent = KilnOutputs['status']['events'][number];
export type QueueEstimate = NonNullable<KilnOutputs['status']['queue']>;
export type Model = KilnOutputs['models'][number];
export type Credits = KilnOutputs['credits'];
export type Stats = KilnOutputs['ops']['stats'];
export type Overview = KilnOutputs['admin']['ops']['overview'];

/** A client for this page's own origin: the page never talks to anything but the Kiln that served it. */
export const connect = (credential: string): KilnClient => createKilnClient({ url: location.origin, apiKey: credential });

export interface ProblemView {
  message: string;
  code: string | undefined;
  /** Invalid fields, as the server names them (`prompt`, `items.3.prompt`). */
  fields: Record<string, string[]>;
}

/** What went wrong, in the server's words; never a stack. */
export function describeError(error: unknown): ProblemView {
  if (error instanceof TRPCClientError) {
    const data: unknown = error.data;
    const record = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
    const code = typeof record.code === 'string' ? record.code : undefined;
    const fields: Record<string, string[]> = {};
    if (typeof record.fields === 'object' && record.fields !== null) {
      for (const [name, messages] of Object.entries(record.fields as Record<string, unknown>)) {
        if (Array.isArray(messages)) fields[name] = messages.filter((message): message is string => typeof message === 'string');
      }
    }
    const offline = code === undefined && /fetch|network|websocket/i.test(error.message);
    return { message: offline ? 'Kiln cannot be reached right now; check that it is running, then try again.' : error.message, code, fields };
  }
  return { message: error instanceof Error ? error.message : String(error), code: undefined, fields: {} };
}

/** What a person can do about a failed generation, by its error code. */
export const FAILURE_ADVICE: Record<string, string> = {
  provider_rejected: 'The model refused this input: change the prompt or the image, then submit again.',
  unusable_source: 'The photo could not be used (it does not decode, or is no longer stored): upload it again.',
  provider_failed: 'The model failed on this one: retrying often works.',
  provider_unavailable: 'The provider kept failing: retry in a few minutes.',
  provider_canceled: 'The provider canceled it: retry.',
  deadline_exceeded: 'It did not finish before its deadline: retry, or give it more time.',
  prediction_timeout: 'It ran past its time limit: retry, or pick a faster model or tier.',
  unusable_output: 'The model answered with an image Kiln could not use: retry.',
  insufficient_credit: 'Not enough credit left: ask your operator for more, then retry.',
  internal_error: 'Kiln failed on this one: retry, and tell your operator if it keeps failing.',
};
