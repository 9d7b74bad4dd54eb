// The provider as the worker sees it: create, get and cancel predictions, and upload the files
// their inputs name.
import type { PredictionStatus } from '../../db/schema.ts';

export { FINAL_PREDICTION_STATUSES, PREDICTION_STATUSES, isFinalPredictionStatus, type PredictionStatus } from '../../db/schema.ts';

/**
 * The two kinds of provider call: Replicate budgets creates apart from everything else, and a
 * create must not be repeated after an ambiguous failure, while a read (get, cancel, list) may.
 */
export type CallKind = 'create' | 'read';

export interface Prediction {
  id: string;
  status: PredictionStatus;
  /** Output image URLs once succeeded. */
  output: string[];
  error: string | null;
  logs: string;
  /** 0..1 when the model reports progress in its logs. */
  progress: number | null;
  /** Seconds the model ran (the provider's metrics.predict_time), once it has. */
  predictSeconds: number | null;
  /**
   * Seconds from its creation to its end, on the provider's own clock (completed_at − created_at,
   * else metrics.total_time), once it has ended: how long it took, whenever we happened to look.
   */
  totalSeconds: number | null;
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
  /** The dispatcher booked this create's slot in the shared budget already: its first attempt books none. */
  slotBooked?: boolean;
}

/** A file uploaded to the provider (Replicate's Files API): its URL is what a model's image field takes. */
export interface ProviderFile {
  id: string;
  /** The file's `urls.get`: readable by this account's predictions only. */
  url: string;
  /** When the provider deletes it (Replicate: 24 h after upload); null when its answer did not say. */
  expiresAt: Date | null;
}

export interface FileUpload {
  bytes: Buffer;
  /** e.g. image/png: kept with the file, so the model reads it as what it is. */
  contentType: string;
  filename: string;
  metadata: Record<string, string>;
}

export interface ImageProvider {
  readonly name: string;
  /**
   * Where an uploaded file may be used: the provider account it belongs to (its endpoint and
   * credentials). A file of another scope is not readable by this one's predictions.
   */
  readonly fileScope: string;
  /** Uploads one file (a provider call on the read budget: Replicate counts it among "all other endpoints"). */
  uploadFile(file: FileUpload, signal?: AbortSignal): Promise<ProviderFile>;
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
