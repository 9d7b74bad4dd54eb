// Kiln's command line: serve (API + worker + simulator), migrate, keys.
import { parseArgs } from 'node:util';
import { createApiKey, listApiKeys, revokeApiKey } from '../db/api-keys.ts';
import { createTenant, findTenant } from '../db/tenants.ts';
import { createApp } from './app.ts';
import { ensureDevelopmentKey } from './bootstrap.ts';
import { ConfigError, loadConfig, type KilnConfig } from './config.ts';
import { connectDatabase } from './database-setup.ts';
import { createLogger } from './logger.ts';

const USAGE = `Usage:
  kiln serve                                   start the API, the worker and (without REPLICATE_API_TOKEN) the simulator
  kiln migrate                                 bring the database schema up to date
  kiln keys create --tenant NAME [--name LABEL] [--tier free|standard|pro]
                                               create an API key (and the tenant if new); prints the key once
  kiln keys revoke ID_OR_PREFIX                revoke a key
  kiln keys list [--tenant NAME]               list keys (prefixes only; keys are stored hashed)

Through npm: npm start | npm run migrate | npm run keys -- create --tenant acme`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const config = loadConfig();
  switch (command) {
    case 'serve':
      return serve(config);
    case 'migrate':
      return migrate(config);
    case 'keys':
      return keys(config, rest);
    default:
      console.error(USAGE);
      return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
  }
}

async function serve(config: KilnConfig): Promise<number> {
  const app = await createApp(config).start();
  const developmentKey = await ensureDevelopmentKey(app.database.db);
  const lines = [
    '',
    `Kiln is running (role: ${config.role})`,
    ...(app.url ? [`  API        ${app.url}/trpc`, `  Health     ${app.url}/health`] : []),
    `  Provider   ${app.simulator ? `built-in Replicate simulator at ${app.simulator.url} (set REPLICATE_API_TOKEN for the real Replicate)` : app.providerUrl}`,
    `  Database   ${app.databaseDescription}`,
    developmentKey
      ? `  API key    ${developmentKey}\n             (development key for tenant "default": shown once, stored hashed — copy it now)`
      : '  API keys   create one with: npm run keys -- create --tenant <name>',
    '',
  ];
  console.log(lines.join('\n'));

  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        console.error(`${signal} again: exiting without waiting`);
        process.exit(1);
      }
      stopping = true;
      console.log(`${signal}: stopping (in-flight work finishes or is handed back to the queue)…`);
      void app.stop().then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  console.log('Kiln stopped');
  return 0;
}

async function migrate(config: KilnConfig): Promise<number> {
  const connected = await connectDatabase(config, createLogger('info', (line) => console.log(line)));
  await connected.close();
  console.log(`schema is up to date (${connected.description})`);
  return 0;
}

async function keys(config: KilnConfig, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { tenant: { type: 'string' }, name: { type: 'string' }, tier: { type: 'string' } },
  });
  const [action, target] = positionals;
  const connected = await connectDatabase(config, createLogger('warn'));
  const db = connected.handle.db;
  try {
    if (action === 'create') {
      if (!values.tenant) return usageError('keys create needs --tenant NAME');
      const tier = values.tier ?? 'standard';
      if (!['free', 'standard', 'pro'].includes(tier)) return usageError('--tier must be free, standard or pro');
      const existing = await findTenant(db, values.tenant);
      if (existing && values.tier && existing.tier !== values.tier) {
        console.error(`note: tenant "${existing.name}" exists with tier ${existing.tier}; --tier applies only to new tenants`);
      }
      const tenant = existing ?? (await createTenant(db, values.tenant, tier));
      const key = await createApiKey(db, tenant.id, values.name ?? 'created with the keys command');
      console.log(`API key for tenant "${tenant.name}" (${tenant.id}):\n\n  ${key.key}\n\nShown once; Kiln stores only its hash. Key id: ${key.id}`);
      return 0;
    }
    if (action === 'revoke') {
      if (!target) return usageError('keys revoke needs a key id or prefix');
      const outcome = await revokeApiKey(db, target);
      if (outcome.kind === 'revoked') console.log(`revoked key ${outcome.keyId}`);
      else if (outcome.kind === 'ambiguous') console.error(`${outcome.matches} active keys start with ${target}; give the key id (see keys list)`);
      else console.error(`no active key matches ${target}`);
      return outcome.kind === 'revoked' ? 0 : 1;
    }
    if (action === 'list') {
      const tenant = values.tenant ? await findTenant(db, values.tenant) : undefined;
      if (values.tenant && !tenant) return usageError(`no tenant named ${values.tenant}`);
      const rows = await listApiKeys(db, tenant?.id);
      for (const row of rows) {
        console.log(`${row.id}  ${row.prefix}…  tenant=${row.tenant_name}  ${row.revoked_at ? `revoked ${row.revoked_at.toISOString()}` : 'active'}  ${row.name}`);
      }
      if (rows.length === 0) console.log('no keys');
      return 0;
    }
    return usageError(`unknown keys action: ${action ?? '(none)'}`);
  } finally {
    await connected.close();
  }
}

function usageError(message: string): number {
  console.error(`${message}\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) console.error(error.message);
    else console.error('kiln failed:', error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  },
);
