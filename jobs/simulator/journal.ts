import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

// An append-only journal of JSON lines: each change is one line written at once (so a prediction
// answered 201 is on disk even if the process is killed right after), and the file is rewritten
// from a snapshot of what is alive when it has grown to several times that (compaction), so its
// size stays proportional to what it holds. Loading skips lines that do not parse — a torn last
// line after a crash — and compacts at once, so later appends never follow a torn line.

export interface JournalOptions<Entry> {
  readonly path: string;
  /** Everything alive now, as the entries that recreate it. */
  readonly snapshot: () => Iterable<Entry>;
}

/** Compaction waits for at least this many appended lines, and for twice as many as were alive. */
const MIN_LINES_BEFORE_COMPACTION = 10_000;

export class Journal<Entry> {
  readonly #options: JournalOptions<Entry>;
  #fd: number | null = null;
  #linesAppended = 0;
  #linesAtCompaction = 0;

  private constructor(options: JournalOptions<Entry>) {
    this.#options = options;
  }

  /** What the journal at `path` holds, oldest first; lines that do not parse are skipped and counted. */
  static read<Entry>(path: string, parse: (value: unknown) => Entry | undefined): { entries: Entry[]; skippedLines: number } {
    const entries: Entry[] = [];
    let skippedLines = 0;
    if (!existsSync(path)) return { entries, skippedLines };
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      let entry: Entry | undefined;
      try {
        entry = parse(JSON.parse(line));
      } catch {
        entry = undefined;
      }
      if (entry === undefined) skippedLines++;
      else entries.push(entry);
    }
    return { entries, skippedLines };
  }

  /** Opens the journal for appending, first rewriting it as a snapshot of what is alive now. */
  static open<Entry>(options: JournalOptions<Entry>): Journal<Entry> {
    const journal = new Journal(options);
    journal.compact();
    return journal;
  }

  append(entry: Entry): void {
    if (this.#fd === null) return;
    writeFileSync(this.#fd, `${JSON.stringify(entry)}\n`);
    this.#linesAppended++;
    if (this.#linesAppended >= Math.max(MIN_LINES_BEFORE_COMPACTION, 2 * this.#linesAtCompaction)) this.compact();
  }

  /** Rewrites the journal as a snapshot: written aside, flushed, then renamed over the old one. */
  compact(): void {
    const lines: string[] = [];
    for (const entry of this.#options.snapshot()) lines.push(`${JSON.stringify(entry)}\n`);
    const aside = `${this.#options.path}.compacting`;
    const fd = openSync(aside, 'w');
    try {
      writeFileSync(fd, lines.join(''));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (this.#fd !== null) closeSync(this.#fd);
    renameSync(aside, this.#options.path);
    this.#fd = openSync(this.#options.path, 'a');
    this.#linesAtCompaction = lines.length;
    this.#linesAppended = 0;
  }

  close(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }
}
