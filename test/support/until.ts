// Waits for a condition a test cannot be told about: polls the probe until it answers.
import { setTimeout as sleep } from 'node:timers/promises';

/** The probe's first answer other than undefined; fails after `timeoutMs`. */
export async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}
