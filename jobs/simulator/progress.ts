// tqdm-style progress lines, the format the `replicate` client's parseProgressFromLogs reads:
//  25%|██▌       | 1/4 [00:00<00:01, 3.10it/s]

const PARTIAL_BLOCKS = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const BAR_WIDTH = 10;

function clock(seconds: number): string {
  const whole = Math.max(0, Math.floor(seconds));
  return `${String(Math.floor(whole / 60)).padStart(2, '0')}:${String(whole % 60).padStart(2, '0')}`;
}

function bar(fraction: number): string {
  const filled = fraction * BAR_WIDTH;
  const full = Math.floor(filled);
  if (full >= BAR_WIDTH) return '█'.repeat(BAR_WIDTH);
  const partial = PARTIAL_BLOCKS[Math.floor((filled - full) * 8)] ?? ' ';
  return `${'█'.repeat(full)}${partial}`.padEnd(BAR_WIDTH, ' ');
}

export function progressLine(step: number, total: number, elapsedSeconds: number): string {
  const percent = String(Math.floor((step * 100) / total)).padStart(3, ' ');
  if (step === 0) return `${percent}%|${bar(0)}| 0/${total} [00:00<?, ?it/s]`;
  const rate = step / Math.max(elapsedSeconds, 1e-3);
  const remaining = (total - step) / rate;
  return `${percent}%|${bar(step / total)}| ${step}/${total} [${clock(elapsedSeconds)}<${clock(remaining)}, ${rate.toFixed(2)}it/s]`;
}
