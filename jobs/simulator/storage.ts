import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openDataFolder, type AccountSecrets, type DataFolder } from './data-folder.ts';
import type { FileRecord, FileStore } from './file-store.ts';
import { Journal } from './journal.ts';
import { fileEntryOf, parseJournalEntry, predictionEntryOf, predictionRecordOf, type JournalEntry, type PredictionEntry } from './persisted.ts';
import type { PredictionEngine, PredictionJournal } from './predictions.ts';

// Keeps the simulator's predictions and uploaded files in its data folder (when it has one), so a
// simulator started again on the same folder knows them and lets running ones finish. Without a
// data folder every hook does nothing.

export class SimulatorStorage {
  readonly #dir: string | null;
  readonly #generated: AccountSecrets;
  #folder: DataFolder | null = null;
  #journal: Journal<JournalEntry> | null = null;

  /** `generated`: secrets this run made up, to be kept for the next one. */
  constructor(dir: string | null, generated: AccountSecrets) {
    this.#dir = dir;
    this.#generated = generated;
  }

  /** Where uploaded files' bytes go (null: in memory). */
  get filesDir(): string | null {
    return this.#dir === null ? null : path.join(this.#dir, 'files');
  }

  /** Where predictions' input images go (null: in memory). */
  get inputsDir(): string | null {
    return this.#dir === null ? null : path.join(this.#dir, 'inputs');
  }

  readonly predictions: PredictionJournal = {
    saved: (record) => this.#append(predictionEntryOf(record)),
    forgotten: (id) => this.#append({ type: 'prediction-forgotten', id }),
  };

  readonly fileSaved = (file: FileRecord): void => this.#append(fileEntryOf(file));
  readonly fileDeleted = (id: string): void => this.#append({ type: 'file-deleted', id });

  /**
   * Takes the data folder, gives the engine and the file store what the journal holds, and opens
   * the journal for the changes to come. Returns how many journal lines could not be read.
   */
  open(engine: PredictionEngine, files: FileStore): { skippedLines: number } {
    if (this.#dir === null) return { skippedLines: 0 };
    this.#folder = openDataFolder(this.#dir, this.#generated);
    const { entries, skippedLines } = Journal.read(this.#folder.journalPath, parseJournalEntry);
    // Replay: the last line about each prediction or file is its state.
    const predictions = new Map<string, PredictionEntry>();
    const kept = new Map<string, FileRecord>();
    for (const entry of entries) {
      if (entry.type === 'prediction') predictions.set(entry.id, entry);
      else if (entry.type === 'prediction-forgotten') predictions.delete(entry.id);
      else if (entry.type === 'file') {
        const { type: _type, ...file } = entry;
        kept.set(file.id, file);
      } else kept.delete(entry.id);
    }
    const records = [...predictions.values()].sort((a, b) => a.seq - b.seq).flatMap((entry) => predictionRecordOf(entry) ?? []);
    engine.restore(records);
    const filesDir = this.filesDir ?? '';
    for (const file of kept.values()) if (existsSync(path.join(filesDir, file.id))) files.restore(file);
    this.#journal = Journal.open({
      path: this.#folder.journalPath,
      snapshot: function* (): Iterable<JournalEntry> {
        for (const record of engine.all()) yield predictionEntryOf(record);
        for (const file of files.all()) yield fileEntryOf(file);
      },
    });
    return { skippedLines: skippedLines + (predictions.size - records.length) };
  }

  /**
   * The port it listened on last time (undefined: none kept). A simulator started again on its
   * folder listens there again when it can, so the URLs it handed out before — output files a
   * worker is yet to download — still reach it, as Replicate's file host stays where it is.
   */
  rememberedPort(): number | undefined {
    if (this.#dir === null) return undefined;
    try {
      const port = Number(readFileSync(path.join(this.#dir, 'port'), 'utf8').trim());
      return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
    } catch {
      return undefined;
    }
  }

  rememberPort(port: number): void {
    if (this.#dir !== null) writeFileSync(path.join(this.#dir, 'port'), `${port}\n`);
  }

  /** Compacts the journal one last time (so removed data leaves the folder too), then lets it go. */
  close(): void {
    this.#journal?.compact();
    this.#journal?.close();
    this.#journal = null;
    this.#folder?.release();
    this.#folder = null;
  }

  #append(entry: JournalEntry): void {
    this.#journal?.append(entry);
  }
}
