import type { Logger } from '../jobs/logger.ts';

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof LEVELS;

/** One line per message: time, level, message, then key=value fields. */
export function createLogger(level: LogLevel, write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Logger {
  const threshold = LEVELS[level];
  const log = (lineLevel: Exclude<LogLevel, 'silent'>) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lineLevel] < threshold) return;
    const rendered = Object.entries(fields ?? {})
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value)}`)
      .join(' ');
    write(`${new Date().toISOString()} ${lineLevel.toUpperCase().padEnd(5)} ${message}${rendered ? ` ${rendered}` : ''}`);
  };
  return { info: log('info'), warn: log('warn'), error: log('error') };
}
