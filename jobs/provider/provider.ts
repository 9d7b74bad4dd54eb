// The provider as the worker sees it: create, get and cancel predictions.
export const PREDICTION_STATUSES = ['starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted'] as const;
export type PredictionStatus = (typeof PREDICTION_STATUSES)[number];
export const FINAL_PREDICTION_STATUSES: readonly PredictionStatus[] = ['succeeded', 'failed', 'canceled', 'aborted'];

export interface Prediction {
  id: string;
  status: PredictionStatus;
  /** Output image URLs once succeeded. */
  output: string[];
  error: string | null;
  logs: string;
  /** 0..1 when the model reports progress in its logs. */
  progress: number | null;
}

/** A prediction as the list endpoint shows it: enough to recognise one we created. */
export interface ListedPrediction extends Prediction {
  createdAt: Date | null;
  input: Record<string, unknown>;
  /** "owner/name" of the model, and the version id, as the provider reports them. */
  model: string | null;
  version: string | null;
}

export interface PredictionPage {
  predictions: ListedPrediction[];
  /** Pass back to get the next (older) page; undefined on the last. */
  next: string | undefined;
}

export interface CreatePredictionRequest {
  route: { model: `${string}/${string}` } | { version: string };
  input: Record<string, unknown>;
  webhook?: string;
  /** Replicate ends the prediction (aborted or canceled) past this deadline. */
  cancelAfterSeconds?: number;
}

export interface ImageProvider {
  readonly name: string;
  createPrediction(request: CreatePredictionRequest, signal?: AbortSignal): Promise<Prediction>;
  getPrediction(id: string, signal?: AbortSignal): Promise<Prediction>;
  cancelPrediction(id: string, signal?: AbortSignal): Promise<Prediction>;
  /** The secret the provider signs webhooks with ("whsec_…"). */
  webhookSecret(signal?: AbortSignal): Promise<string>;
  /** Recent predictions, newest first, a page at a time. */
  listPredictions(page: string | undefined, signal?: AbortSignal): Promise<PredictionPage>;
  /** Whether an output URL may be downloaded: only the provider's own file hosts. */
  isAllowedOutputUrl(url: URL): boolean;
}
