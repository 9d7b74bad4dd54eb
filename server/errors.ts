// The few ways a request can fail on purpose. Thrown as values by services; mapped to tRPC
// codes in one place (trpc.ts). Anything else is a bug and reaches clients as a masked 500.

export type DomainErrorCode = 'NOT_FOUND' | 'CONFLICT' | 'BAD_REQUEST' | 'UNAUTHORIZED' | 'FORBIDDEN';

export class DomainError extends Error {
  override name = 'DomainError';
  readonly code: DomainErrorCode;
  /** Field paths of invalid input, when the error is about specific fields. */
  readonly fields: Record<string, string[]> | undefined;
  constructor(code: DomainErrorCode, message: string, fields?: Record<string, string[]>) {
    super(message);
    this.code = code;
    this.fields = fields;
  }
}

export const notFound = (what: string, id: string) =>
  new DomainError('NOT_FOUND', `${what} ${id} was not found (it does not exist, or belongs to another tenant)`);

export const conflict = (message: string) => new DomainError('CONFLICT', message);

export const badRequest = (message: string, fields?: Record<string, string[]>) => new DomainError('BAD_REQUEST', message, fields);

export const unauthorized = (message: string) => new DomainError('UNAUTHORIZED', message);

export const forbidden = (message: string) => new DomainError('FORBIDDEN', message);
