// Kiln's command line: serve (API + worker + simulator), migrate, keys, tenants.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { listApiKeys, revokeApiKey } from '../db/api-keys.ts';
import { grantCredits, toMicroUsd, toUsd } from '../db/credits.ts';
import { SHARE_BY, TENANT_TIERS, type Tenant } from '../db/schema.ts';
import { findTenant, listTenants, updateTenant, type TenantChanges } from '../db/tenants.ts';
import { normalizeHostPattern } from '../jobs/sources/host-allowlist.ts';
import { createApp } from './app.ts';
import { ensureDevelopmentKey } from './bootstrap.ts';
import { ConfigError, loadConfig, type KilnConfig } from './config.ts';
import { connectDatabase } from './database-setup.ts';
import { createKeyForTenant } from './key-service.ts';
import { trace } from '@opentelemetry/api';
import { createLogger } from './logger.ts';

const USAGE = `Usage:
  kiln serve                                   start the API, the worker and (without REPLICATE_API_TOKEN) the simulator
  kiln migrate                                 bring the database schema up to date
  kiln keys create --tenant NAME [--name LABEL] [--tier free|standard|pro] [--share-by tenant|subject]
                                               create an API key (and the tenant if new); prints the key once
  kiln keys revoke ID_OR_PREFIX                revoke a key
  kiln keys list [--tenant NAME]               list keys (prefixes only; keys are stored hashed)
  kiln tenants set NAME_OR_ID [--tier free|standard|pro] [--share-by tenant|subject] [--in-progress-cap N|default]
                 [--requests-per-minute N|default] [--request-burst N|default]
                 [--subject-requests-per-minute N|none] [--subject-request-burst N|default]
                 [--source-hosts HOST,HOST…|none]
                                               change a tenant's tier (model, weight, request limits),
                                               what its fair share divides by (the tenant, or each
                                               subject), how many of its generations may be in
                                               progress at once, its own request limits, a
                                               request limit for each of its subjects, or the
                                               hosts its image sources may be fetched from
                                               (cdn.shop.example exactly, *.shop.example below it)
  kiln tenants grant NAME_OR_ID --usd N [--note TEXT]
                                               add credit (a tenant granted credit is charged for
                                               its generations from then on)
  kiln tenants list                            list tenants with their settings

Through npm: npm start | npm run migrate | npm run keys -- create --tenant acme | npm run tenants -- list`;

/** A command line that cannot be carried out as given: said with the usage, exit code 2. */
class UsageError extends Error {
  override name = 'UsageError';
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const config = loadConfig();
  try {
    switch (command) {
      case 'serve':
        return await serve(config);
      case 'migrate':
        return await migrate(config);
      case 'keys':
        return await keys(config, rest);
      case 'tenants':
        return await tenants(config, rest);
      default:
        console.error(USAGE);
        return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
    }
  } catch (error) {
    if (error instanceof UsageError) return usageError(error.message);
    throw error;
  }
}

/** Options and positionals; an unknown option or a missing value is a usage error, not a crash. */
function parseCommand<T extends ParseArgsOptionsConfig>(args: string[], options: T) {
  try {
    return parseArgs({ args, allowPositionals: true, strict: true, options });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // Node's own wording for an unknown option is about positionals; say what is allowed instead.
    const unknown = /^Unknown option '([^']+)'/.exec(message)?.[1];
    const allowed = Object.keys(options).map((name) => `--${name}`).join(', ');
    throw new UsageError(unknown ? `unknown option ${unknown}; the options here are: ${allowed}` : message);
  }
}

/** The value if it is one of the allowed ones; a usage error naming them otherwise. */
function oneOf<T extends string>(option: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${option} must be one of: ${allowed.join(', ')} (got "${value}")`);
}

/** `--source-hosts a.example,*.b.example`: the normalised patterns, `none` for none; undefined when not given. */
function sourceHostsOption(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === 'none') return [];
  const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) throw new UsageError('--source-hosts needs host names separated by commas, or "none"');
  const patterns = entries.map((entry) => {
    const pattern = normalizeHostPattern(entry);
    if (pattern === undefined) throw new UsageError(`--source-hosts: "${entry}" is not a host; give names like cdn.shop.example, *.shop.example for every host below it, or an IP address (no scheme, port or path)`);
    return pattern;
  });
  return [...new Set(patterns)];
}

const hostsText = (hosts: readonly string[]) => (hosts.length > 0 ? hosts.join(',') : 'none');

/** A positive number (whole, if `integer`), or the `clear` word (null); undefined when not given. */
function positiveOption(flag: string, value: string | undefined, rule: { clear?: string; integer: boolean }): number | null | undefined {
  if (value === undefined) return undefined;
  if (rule.clear !== undefined && value === rule.clear) return null;
  const number = Number(value);
  const fits = value.trim() !== '' && Number.isFinite(number) && number > 0 && number <= 1e9 && (!rule.integer || Number.isInteger(number));
  const or = rule.clear === undefined ? '' : ` or "${rule.clear}"`;
  if (!fits) throw new UsageError(`${flag} must be ${rule.integer ? 'a whole number from 1' : 'a number above 0'}${or} (got "${value}")`);
  return number;
}

async function serve(config: KilnConfig): Promise<number> {
  const app = await createApp(config).start();
  const developmentKey = await ensureDevelopmentKey(app.database.db);
  const lines = [
    '',
    `Kiln is running (role: ${config.role})`,
    ...(app.url ? [`  API        ${app.url}/trpc`] : []),
    // The key rides in the fragment, which the browser never sends: the page keeps it, and drops it from the address bar.
    ...(app.url ? [`  Studio     ${app.url}/${developmentKey ? `#key=${developmentKey}  (signs in with the development key)` : ''}`] : []),
    `  Health     ${app.opsUrl}/health  ${app.opsUrl}/ready`,
    `  Metrics    ${app.opsUrl}/metrics`,
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
  await flushRegisteredTracing();
  console.log('Kiln stopped');
  return 0;
}

/**
 * An OpenTelemetry SDK the operator registered (README, "Logs and traces") batches its spans:
 * it exports the last of them before the process exits. Without one this finds nothing to do.
 */
async function flushRegisteredTracing(): Promise<void> {
  const registered: unknown = trace.getTracerProvider();
  const provider = hasMethod(registered, 'getDelegate') ? registered.getDelegate() : registered;
  if (!hasMethod(provider, 'forceFlush')) return;
  await Promise.resolve(provider.forceFlush()).catch((error: unknown) => console.error('exporting the last spans failed:', error instanceof Error ? error.message : error));
}

function hasMethod<K extends string>(value: unknown, name: K): value is Record<K, () => unknown> {
  return typeof value === 'object' && value !== null && typeof (value as Record<string, unknown>)[name] === 'function';
}

async function migrate(config: KilnConfig): Promise<number> {
  const connected = await connectDatabase(config, createLogger({ level: 'info', format: config.log.format }));
  await connected.close();
  console.log(`schema is up to date (${connected.description})`);
  return 0;
}

async function keys(config: KilnConfig, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    tenant: { type: 'string' },
    name: { type: 'string' },
    tier: { type: 'string' },
    'share-by': { type: 'string' },
  });
  const [action, target] = positionals;
  // Checked before the database is touched, so a wrong value changes nothing.
  const tier = oneOf('--tier', values.tier, TENANT_TIERS);
  const shareBy = oneOf('--share-by', values['share-by'], SHARE_BY);
  if (action === 'create' && !values.tenant) return usageError('keys create needs --tenant NAME');
  const connected = await connectDatabase(config, createLogger({ level: 'warn', format: config.log.format }));
  const db = connected.handle.db;
  try {
    if (action === 'create' && values.tenant) {
      const made = await createKeyForTenant(db, { tenant: values.tenant, name: values.name ?? 'created with the keys command', tier, shareBy });
      const { tenant, key } = made;
      if (made.ignored.length > 0) {
        console.error(
          `note: tenant "${tenant.name}" exists with ${made.ignored.map((option) => (option === 'tier' ? `tier ${tenant.tier}` : `share-by ${tenant.share_by}`)).join(' and ')}; --tier and --share-by apply only to new tenants ` +
            `(change it with: kiln tenants set ${tenant.name} …)`,
        );
      }
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

/** A tenant's numeric settings that `tenants set` changes: each a flag, its column, and the word that clears it. */
const TENANT_NUMBERS = [
  { flag: 'in-progress-cap', column: 'in_progress_cap', change: 'inProgressCap', clear: 'default', integer: true },
  { flag: 'requests-per-minute', column: 'requests_per_minute', change: 'requestsPerMinute', clear: 'default', integer: false },
  { flag: 'request-burst', column: 'request_burst', change: 'requestBurst', clear: 'default', integer: true },
  { flag: 'subject-requests-per-minute', column: 'subject_requests_per_minute', change: 'subjectRequestsPerMinute', clear: 'none', integer: false },
  { flag: 'subject-request-burst', column: 'subject_request_burst', change: 'subjectRequestBurst', clear: 'default', integer: true },
] as const satisfies readonly { flag: string; column: keyof Tenant; change: keyof TenantChanges; clear: string; integer: boolean }[];

async function tenants(config: KilnConfig, args: string[]): Promise<number> {
  const numberFlags = Object.fromEntries(TENANT_NUMBERS.map((setting) => [setting.flag, { type: 'string' as const }])) as Record<(typeof TENANT_NUMBERS)[number]['flag'], { type: 'string' }>;
  const [first] = args;
  if (first === 'grant') return grant(config, args.slice(1));
  const { values, positionals } = parseCommand(args, { tier: { type: 'string' }, 'share-by': { type: 'string' }, ...numberFlags, 'source-hosts': { type: 'string' } });
  const [action, target, ...extra] = positionals;
  if (action !== 'set' && action !== 'list') return usageError(`unknown tenants action: ${action ?? '(none)'}`);
  if (extra.length > 0) return usageError(`tenants ${action} takes ${action === 'set' ? 'one tenant' : 'no arguments'}; unexpected: ${extra.join(' ')}`);
  // Every value is checked before the database is touched, so a wrong one changes nothing.
  const tier = oneOf('--tier', values.tier, TENANT_TIERS);
  const shareBy = oneOf('--share-by', values['share-by'], SHARE_BY);
  const numbers = TENANT_NUMBERS.flatMap((setting) => {
    const value = positiveOption(`--${setting.flag}`, values[setting.flag], setting);
    return value === undefined ? [] : [{ setting, value }];
  });
  const sourceHosts = sourceHostsOption(values['source-hosts']);
  if (action === 'set') {
    if (!target) return usageError('tenants set needs a tenant name or id (see: kiln tenants list)');
    if (!tier && !shareBy && numbers.length === 0 && !sourceHosts) {
      return usageError(`tenants set needs --tier, --share-by or one of ${TENANT_NUMBERS.map((setting) => `--${setting.flag}`).join(', ')}, --source-hosts`);
    }
  } else if (target || tier || shareBy || numbers.length > 0 || sourceHosts) {
    return usageError('tenants list takes no arguments or options');
  }

  const connected = await connectDatabase(config, createLogger({ level: 'warn', format: config.log.format }));
  const db = connected.handle.db;
  try {
    if (action === 'list') {
      const rows = await listTenants(db);
      for (const row of rows) {
        const own = TENANT_NUMBERS.map((setting) => `${setting.flag}=${row[setting.column] ?? setting.clear}`).join('  ');
        console.log(`${row.id}  ${row.name}  tier=${row.tier}  share-by=${row.share_by}  ${own}  source-hosts=${hostsText(row.source_hosts)}  active-keys=${row.activeKeys}  created ${row.created_at.toISOString()}`);
      }
      if (rows.length === 0) console.log('no tenants');
      return 0;
    }
    const tenant = target ? await findTenant(db, target) : undefined;
    if (!tenant) return usageError(`no tenant is named or has the id "${target ?? ''}" (see: kiln tenants list)`);
    const changes: TenantChanges = { tier, shareBy, sourceHosts, ...Object.fromEntries(numbers.map(({ setting, value }) => [setting.change, value])) };
    const updated = await updateTenant(db, tenant.id, changes);
    if (!updated) return usageError(`tenant "${tenant.name}" was removed meanwhile`);
    const said = [
      ...(tier ? [`tier ${tenant.tier} → ${updated.tier}`] : []),
      ...(shareBy ? [`share-by ${tenant.share_by} → ${updated.share_by}`] : []),
      ...numbers.map(({ setting }) => `${setting.flag} ${tenant[setting.column] ?? setting.clear} → ${updated[setting.column] ?? setting.clear}`),
      ...(sourceHosts ? [`source-hosts ${hostsText(tenant.source_hosts)} → ${hostsText(updated.source_hosts)}`] : []),
    ];
    console.log(`tenant "${updated.name}" (${updated.id}): ${said.join(', ')}`);
    // The tier and the limits are cached by API processes with verified keys.
    if (tier || numbers.length > 0) console.log(`running API processes apply the change within KILN_AUTH_CACHE_MS (${config.authCacheMs} ms)`);
    return 0;
  } finally {
    await connected.close();
  }
}

/** `tenants grant NAME --usd N`: adds credit, and meters the tenant from then on. */
async function grant(config: KilnConfig, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, { usd: { type: 'string' }, note: { type: 'string' } });
  const [target, ...extra] = positionals;
  if (!target) return usageError('tenants grant needs a tenant name or id (see: kiln tenants list)');
  if (extra.length > 0) return usageError(`tenants grant takes one tenant; unexpected: ${extra.join(' ')}`);
  const usd = positiveOption('--usd', values.usd, { integer: false });
  if (usd === undefined || usd === null) return usageError('tenants grant needs --usd, the credit to add in US dollars (e.g. --usd 25)');
  const connected = await connectDatabase(config, createLogger({ level: 'warn', format: config.log.format }));
  try {
    const tenant = await findTenant(connected.handle.db, target);
    if (!tenant) return usageError(`no tenant is named or has the id "${target}" (see: kiln tenants list)`);
    const balance = await grantCredits(connected.handle.db, tenant.id, toMicroUsd(usd), values.note ?? null);
    console.log(`tenant "${tenant.name}" (${tenant.id}): granted $${usd}; available $${toUsd(balance.available)}, held by running work $${toUsd(balance.held)}`);
    return 0;
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
