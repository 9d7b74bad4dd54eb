// Which provider this process talks to: Replicate with a token, a Replicate-compatible
// endpoint (e.g. `npm run simulator`) at REPLICATE_BASE_URL, or a built-in simulator.
import path from 'node:path';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { ImageProvider } from '../jobs/provider/provider.ts';
import { createProviderRateLimiter, type ProviderRateLimiter } from '../jobs/provider/rate-limiter.ts';
import { createProviderPolicies, type ProviderPolicies } from '../jobs/provider/policies.ts';
import { createReplicateProvider } from '../jobs/provider/replicate-provider.ts';
import { createSimulator, type Simulator } from '../jobs/simulator/index.ts';
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

export async function setUpProvider(config: KilnConfig, options: { needsSimulator: boolean; db: Kysely<Database> }): Promise<ProviderSetup> {
  let simulator: Simulator | undefined;
  let baseUrl = config.provider.baseUrl;
  // Without a token only the built-in simulator is used (the config refuses another endpoint without one).
  let apiToken = config.provider.apiToken ?? '';
  if (config.provider.useSimulator && options.needsSimulator) {
    simulator = createSimulator({
      // Its predictions outlive a restart of this process, as Replicate's would.
      dataDir: path.join(config.dataDir, 'simulator'),
      port: config.simulator.port,
      latencyMs: config.simulator.latencyMs,
      // Processes that each run a simulator can then verify each other's webhooks.
      ...(config.provider.webhookSecret ? { webhookSecret: config.provider.webhookSecret } : {}),
      failureRate: config.simulator.failureRate,
    });
    await simulator.start();
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
  });
  await limiter.start();
  const { timeoutMs, retry, breaker, bulkhead } = config.provider;
  const policies = createProviderPolicies({ limiter, timeoutMs, retry, breaker, bulkhead });
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
