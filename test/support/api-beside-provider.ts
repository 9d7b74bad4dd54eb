// For tests that kill workers: the simulated provider and the API outlive them, as Replicate and
// a separate API tier do, and every worker started with `workerEnv` shares the API's database
// and asset folder.
import { createSimulator, type Simulator } from '../../jobs/simulator/index.ts';
import { startKiln, type TestKiln } from './kiln.ts';
import { standaloneProviderEnv } from './simulator.ts';

export interface ApiBesideProvider {
  simulator: Simulator;
  api: TestKiln;
  /** For worker processes (startWorkerProcess): the API's database, public URL and data folder. */
  workerEnv: Record<string, string>;
  stop(): Promise<void>;
}

export async function startApiBesideProvider(latencyMs: { min: number; max: number }): Promise<ApiBesideProvider> {
  const simulator = createSimulator({ latencyMs });
  await simulator.start();
  const shared = { ...standaloneProviderEnv(simulator), REPLICATE_WEBHOOK_SECRET: simulator.webhookSecret, KILN_RETRY_DELAY_SECONDS: '1' };
  const api = await startKiln({ env: { ...shared, KILN_ROLE: 'api' } }).catch(async (error: unknown) => {
    await simulator.stop();
    throw error;
  });
  return {
    simulator,
    api,
    workerEnv: { ...shared, DATABASE_URL: api.databaseUrl, KILN_PUBLIC_URL: api.url, KILN_DATA_DIR: api.dataDir, KILN_SHUTDOWN_GRACE_MS: '2000' },
    async stop() {
      await api.stop();
      await simulator.stop();
    },
  };
}
