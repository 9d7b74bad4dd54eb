// Which provider this process talks to: Replicate with a token, a Replicate-compatible
// endpoint (e.g. `npm run simulator`) at REPLICATE_BASE_URL, or a built-in simulator.
import path from 'node:path';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { ImageProvider } from '../jobs/provider/provider.ts';
import { createProviderRateLimiter, type ProviderRateLimiter } from '../jobs/provider/rate-limiter.ts';
import { createProviderPolicies, type ProviderPolicies } from '../jobs/provider/policies.ts';
import { createReplicateProvider } from '../jobs/provider/replicate-provider.ts';
import type { Logger } from '../jobs/logger.ts';
import type { JobMetrics } from '../jobs/metrics.ts';
import { DataFolderInUseError, createSimulator, type Simulator } from '../jobs/simulator/index.ts';
import { REPLICATE_API_URL, type KilnConfig } from './config.ts';

export interface ProviderSetup {
  provider: ImageProvider;
  policies: ProviderPolicies;
  limiter: ProviderRateLimiter;
  /** The endpoint in use, for the start-up banner. */
  baseUrl: string;
  simulator: Simulator | undefined;
  stop(): Promise<void>;
}

/**
 * The built-in simulator keeps its predictions in the data folder, so they outlive a restart of
 * this process as Replicate's would. One folder holds one simulator's: a second process on the
 * same data folder (say, a second worker) runs its simulator in memory.
 */
async function startBuiltInSimulator(config: KilnConfig, logger: Logger): Promise<Simulator> {
  const settings = {
    port: config.simulator.port,
    latencyMs: config.simulator.latencyMs,
    // Processes that each run a simulator can then verify each other's webhooks.
    ...(config.provider.webhookSecret ? { webhookSecret: config.provider.webhookSecret } : {}),
    failureRate: config.simulator.failureRate,
  };
  const kept = createSimulator({ ...settings, dataDir: path.join(config.dataDir, 'simulator') });
  try {
    await kept.start();
    return kept;
  } catch (error) {
    if (!(error instanceof DataFolderInUseError)) throw error;
    logger.warn('the simulator data folder is in use by another process; this one keeps its predictions in memory', { pid: error.holderPid });
    const inMemory = createSimulator(settings);
    await inMemory.start();
    return inMemory;
  }
}

export async function setUpProvider(config: KilnConfig, options: { needsSimulator: boolean; db: Kysely<Database>; logger: Logger; metrics?: JobMetrics }): Promise<ProviderSetup> {
  let simulator: Simulator | undefined;
  let baseUrl = config.provider.baseUrl;
  // Without a token only the built-in simulator is used (the config refuses another endpoint without one).
  let apiToken = config.provider.apiToken ?? '';
  if (config.provider.useSimulator && options.needsSimulator) {
    simulator = await startBuiltInSimulator(config, options.logger);
    // The simulator makes its own token, as a Replicate account has one; Kiln uses it.
    apiToken = simulator.apiToken;
    baseUrl = `${simulator.url}/v1`;
  }
  // Outputs are downloaded only from the provider's file hosts: Replicate's own, or the
  // origin of whatever Replicate-compatible endpoint is configured.
  const extraOutputOrigins = baseUrl === REPLICATE_API_URL ? [] : [new URL(baseUrl).origin];
  const limiter = createProviderRateLimiter({
    db: options.db,
    provider: 'replicate',
    creates: config.provider.creates,
    reads: config.provider.reads,
    maxWaitMs: config.provider.maxRateWaitMs,
    throttledPauseMs: config.provider.throttledPauseMs,
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  await limiter.start();
  const { timeoutMs, retry, breaker, bulkhead } = config.provider;
  const policies = createProviderPolicies({ limiter, timeoutMs, retry, breaker, bulkhead, ...(options.metrics ? { metrics: options.metrics } : {}) });
  const running = simulator;
  return {
    provider: createReplicateProvider({ apiToken, baseUrl, policies, extraOutputOrigins }),
    policies,
    limiter,
    baseUrl,
    simulator,
    stop: async () => running?.stop(),
  };
}
