import { z } from 'zod';
import { createSimulator, type SimulatorOptions } from './index.ts';

// Standalone simulator: `node jobs/simulator/cli.ts` (npm run simulator).
// Configured by SIM_* environment variables; see README.md.

const optionalNumber = (schema: z.ZodNumber) =>
  z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return undefined;
      const parsed = schema.safeParse(Number(value));
      if (!parsed.success) {
        ctx.addIssue({ code: 'custom', message: `must be ${schema.description ?? 'a valid number'}, got "${value}"` });
        return z.NEVER;
      }
      return parsed.data;
    });

const envSchema = z.object({
  SIM_PORT: optionalNumber(z.number().int().min(0).max(65_535).describe('a port number 0..65535')),
  SIM_HOST: z.string().trim().min(1).optional(),
  SIM_LATENCY_MS: z
    .string()
    .trim()
    .regex(/^\d+(\s*-\s*\d+)?$/, 'must be "min-max" in milliseconds, e.g. "300-1200" (or one number)')
    .transform((value) => {
      const [min = 0, max = min] = value.split('-').map((part) => Number(part.trim()));
      return { min, max };
    })
    .refine((l) => l.max >= l.min, 'max must be >= min')
    .optional(),
  SIM_FAILURE_RATE: optionalNumber(z.number().min(0).max(1).describe('a fraction 0..1')),
  SIM_CREATES_PER_MINUTE: optionalNumber(z.number().positive().describe('a positive number')),
  SIM_READS_PER_MINUTE: optionalNumber(z.number().positive().describe('a positive number')),
  SIM_API_TOKEN: z.string().trim().min(1).optional(),
  SIM_DATA_DIR: z.string().trim().min(1).optional(),
  SIM_MIN_CANCEL_AFTER_MS: optionalNumber(z.number().min(0).describe('a number of milliseconds >= 0')),
  SIM_WEBHOOK_SECRET: z.string().trim().startsWith('whsec_', 'must look like "whsec_<base64>"').optional(),
  SIM_MAX_INPUT_IMAGE_BYTES: optionalNumber(z.number().int().positive().describe('a whole number of bytes > 0')),
  SIM_MAX_IMAGE_PIXELS: optionalNumber(z.number().int().positive().describe('a whole number of pixels > 0')),
  SIM_INPUT_FETCH_TIMEOUT_MS: optionalNumber(z.number().positive().describe('a number of milliseconds > 0')),
});

function optionsFromEnv(env: NodeJS.ProcessEnv): SimulatorOptions {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    console.error(`Invalid simulator configuration:\n${z.prettifyError(parsed.error)}`);
    process.exit(2);
  }
  const e = parsed.data;
  const options: SimulatorOptions = { port: e.SIM_PORT ?? 8788 };
  if (e.SIM_HOST !== undefined) options.host = e.SIM_HOST;
  if (e.SIM_LATENCY_MS !== undefined) options.latencyMs = e.SIM_LATENCY_MS;
  if (e.SIM_FAILURE_RATE !== undefined) options.failureRate = e.SIM_FAILURE_RATE;
  if (e.SIM_CREATES_PER_MINUTE !== undefined) options.createsPerMinute = e.SIM_CREATES_PER_MINUTE;
  if (e.SIM_READS_PER_MINUTE !== undefined) options.readsPerMinute = e.SIM_READS_PER_MINUTE;
  if (e.SIM_API_TOKEN !== undefined) options.apiToken = e.SIM_API_TOKEN;
  if (e.SIM_DATA_DIR !== undefined) options.dataDir = e.SIM_DATA_DIR;
  if (e.SIM_MIN_CANCEL_AFTER_MS !== undefined) options.minCancelAfterMs = e.SIM_MIN_CANCEL_AFTER_MS;
  if (e.SIM_WEBHOOK_SECRET !== undefined) options.webhookSecret = e.SIM_WEBHOOK_SECRET;
  if (e.SIM_MAX_INPUT_IMAGE_BYTES !== undefined) options.maxInputImageBytes = e.SIM_MAX_INPUT_IMAGE_BYTES;
  if (e.SIM_MAX_IMAGE_PIXELS !== undefined) options.maxImagePixels = e.SIM_MAX_IMAGE_PIXELS;
  if (e.SIM_INPUT_FETCH_TIMEOUT_MS !== undefined) options.inputFetchTimeoutMs = e.SIM_INPUT_FETCH_TIMEOUT_MS;
  return options;
}

const options = optionsFromEnv(process.env);
const tokenSource = options.apiToken !== undefined ? 'SIM_API_TOKEN' : options.dataDir !== undefined ? `kept in ${options.dataDir}` : 'generated; set SIM_API_TOKEN to choose it';
const simulator = createSimulator(options);
await simulator.start();
console.log(`Replicate simulator listening on ${simulator.url}`);
console.log(`  replicate client: new Replicate({ auth, baseUrl: '${simulator.url}/v1', useFileOutput: false })`);
console.log(`  api token:        ${simulator.apiToken} (${tokenSource})`);
console.log(`  webhook secret:   ${simulator.webhookSecret}`);
console.log(`  admin:            ${simulator.url}/_sim/stats`);

let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal} received, stopping simulator`);
  simulator.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.once('SIGINT', () => shutdown('SIGINT'));
process.once('SIGTERM', () => shutdown('SIGTERM'));
